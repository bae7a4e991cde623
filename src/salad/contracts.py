"""The contracts layer: one owner in code for the meaning of every `results/` artifact.

Stages write and read artifacts only through the names defined here (they never import each
other; tests/test_layering.py):

- `ARTIFACTS`: the column schema of every tabular artifact (name, type, meaning); the column
  tables of docs/data-contracts.md are generated from it (`python -m salad contracts
  --markdown`; tests/test_contracts.py checks the doc).
- Object tensor: `OBJECT_SLOTS`, `FEATURES`, `N_OBJECTS` x `N_FEATURES` (11 x 12), feature
  indices `PT`, `ETA`, `PHI`, `MASS`, `BTAG` and the one-hot column of each object type
  (`ONEHOT_COLUMN`).
- `EVENT_ID_STRIDE`: event_id = sample code * stride + event number; `sample_code(ids)`.
- `SUBSETS` (values of `subset` in results/split/): encoder half train, val, test; pseudo-data
  half `data`; `eval`: the truth-labelled evaluation set (salad.evalset), never pseudo-data,
  encoder training or reference training; `ref`: the part of an evaluation-only sample that
  trains the idealized / supervised references. `ENCODER_SUBSETS`, `REFERENCE_SUBSETS`.
- `in_signal_region` / `region_masks`: the SR rule m_yy in [lo, hi) GeV, sidebands the rest of
  the window.
- Latent columns: `LATENT_PREFIX` (z0..z{d-1}), `MEAN_PREFIX` (mu0..mu{d-1}).
- Readers, one per artifact kind: `read_events` (preselected ⋈ split, the one join),
  `read_objects` (+ the object tensors), `read_split_sample` / `select_subsets`,
  `read_embeddings` / `latent_columns` / `read_latent` / `latent_for`,
  `read_pseudodata`, `read_template`, `read_evaluation_set`, `read_summary` /
  `sample_xsec_fb` (generated ROOT files).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .artifacts import list_column_to_array, parquet_columns, read_parquet
from .errors import SaladError


# ---------------------------------------------------------------- schemas
@dataclass(frozen=True)
class Column:
    """One column of an artifact: its name, stored type and meaning (units in brackets)."""

    name: str
    dtype: str
    meaning: str


@dataclass(frozen=True)
class Artifact:
    """A tabular artifact: path pattern, writing module, columns."""

    path: str
    module: str
    columns: tuple[Column, ...]

    def kinds(self, *names: str) -> dict[str, str]:
        """{column: reader kind} for `read_parquet` (all plain columns if no names given)."""
        chosen = names or tuple(c.name for c in self.columns if c.dtype in _KIND)
        by_name = {c.name: c for c in self.columns}
        unknown = [n for n in chosen if n not in by_name]
        if unknown:
            raise KeyError(f"{self.path}: no column(s) {unknown} in its contract")
        return {n: _KIND[by_name[n].dtype] for n in chosen}


#: stored type -> kind checked by salad.artifacts.read_parquet
_KIND = {
    "int64": "int",
    "int8": "int",
    "float32": "float",
    "float64": "float",
    "string": "str",
    "bool": "bool",
    "list<float32>[132]": "list",
}

EVENT_ID_STRIDE = 10**9
#: Object tensor rows: (Delphes collection, number of rows), pT ordered within each type.
OBJECT_SLOTS = (("Jet", 4), ("FatJet", 2), ("Electron", 2), ("Muon", 2), ("MissingET", 1))
FEATURES = (
    "pt",
    "eta",
    "phi",
    "mass",
    "btag",
    "tau32",
    "tau43",
    "is_jet",
    "is_fatjet",
    "is_electron",
    "is_muon",
    "is_met",
)
N_OBJECTS, N_FEATURES = sum(n for _, n in OBJECT_SLOTS), len(FEATURES)
PT, ETA, PHI, MASS, BTAG = range(5)
#: one-hot feature column of each object type (all zero on padding rows)
ONEHOT_COLUMN = {"jet": 7, "fatjet": 8, "electron": 9, "muon": 10, "met": 11}
ONEHOT = slice(7, 12)

SUBSETS = ("train", "val", "test", "data", "eval", "ref")
ENCODER_SUBSETS = SUBSETS[:3]
REFERENCE_SUBSETS = ("train", "val", "test", "ref")
LATENT_PREFIX = "z"
MEAN_PREFIX = "mu"

_ID = Column(
    "event_id",
    "int64",
    "unique over all samples: `code * 10**9 + Event.Number` (`code` from the process table)",
)
_SAMPLE = Column("sample", "string", "sample name (process table key)")
_GROUP = Column(
    "group", "int8", "process group id of paper A table I (0 γγ, 1 ggF, 2 VBF, 3 VH, 4 ttH, <0 BSM)"
)
_MYY32 = Column("myy", "float32", "diphoton invariant mass [GeV]")
_LATENT = Column("z0..z{d-1}", "float32", "the latent")
ARTIFACTS: dict[str, Artifact] = {
    "preselected": Artifact(
        "results/preselected/{sample}.parquet",
        "salad.preselect",
        (
            _ID,
            _SAMPLE,
            _GROUP,
            Column(
                "weight",
                "float64",
                "expected events per fb⁻¹: σ×BR [fb] × generator weight / "
                "Σ generator weights of all generated events",
            ),
            _MYY32,
            *(
                Column(
                    f"{v}_y{i}",
                    "float32",
                    f"{'leading' if i == 1 else 'subleading'} photon "
                    f"{v} [{'GeV' if v == 'pt' else 'rad' if v == 'phi' else '1'}]",
                )
                for i in (1, 2)
                for v in ("pt", "eta", "phi")
            ),
            Column("pt_yy", "float32", "diphoton pT [GeV]"),
            Column("dr_yy", "float32", "ΔR between the two photons"),
            Column("objects", "list<float32>[132]", "the 11×12 object tensor, row-major (object, feature)"),
        ),
    ),
    "split": Artifact(
        "results/split/{sample}.parquet",
        "salad.split",
        (
            Column("event_id", "int64", "the preselected event"),
            Column("subset", "string", "one of " + ", ".join(f"`{s}`" for s in SUBSETS)),
        ),
    ),
    "evaluation_set": Artifact(
        "results/evaluation/set.parquet",
        "salad.evalset",
        (
            Column("event_id", "int64", "the preselected event"),
            _SAMPLE,
            Column("group", "int64", "process group id (truth)"),
            Column("is_signal", "bool", "truth: an injected signal event"),
            Column("myy", "float64", "diphoton invariant mass [GeV]"),
            Column("weight", "float64", "expected SR events per fb⁻¹ the event stands for"),
        ),
    ),
    "pseudodata": Artifact(
        "results/pseudodata/{signal}/{strength}/{instance}.parquet",
        "salad.pseudodata",
        (
            Column("event_id", "int64", "the preselected event (at most once)"),
            _SAMPLE,
            _MYY32,
            Column("is_signal", "bool", "truth; evaluation only"),
            Column("group", "int8", "truth; evaluation only"),
        ),
    ),
    "embeddings": Artifact(
        "results/embeddings/{setup}/{seed}.parquet",
        "salad.encoder.embed",
        (
            Column("event_id", "int64", "every preselected event of every sample"),
            _LATENT,
            Column("mu0..mu{d-1}", "float32", "latent means (only next to a sampled z)"),
        ),
    ),
    "template": Artifact(
        "results/cathode/templates/{dataset}.parquet",
        "salad.cathode.template",
        (
            _LATENT,
            _MYY32,
            Column("weight", "float64", "template weight [events]"),
            Column("source", "string", "`flow` or an SM Higgs sample"),
        ),
    ),
    "nplm_toys": Artifact(
        "results/nplm/{setup}/{seed}/toys/{batch}.parquet",
        "salad.nplm",
        (
            Column("toy", "int64", "pseudo-experiment index"),
            Column("t", "float64", "test statistic"),
            Column("n_data", "int64", "background-only data events of the toy"),
            Column("n_ref", "int64", "reference events"),
            Column("n_centers", "int64", "kernel centres"),
            Column("iterations", "int64", "Newton steps"),
            Column("converged", "bool", "the fit converged"),
            Column("seconds", "float64", "fit time [s]"),
        ),
    ),
}
PRESELECTED, SPLIT = ARTIFACTS["preselected"], ARTIFACTS["split"]
EVALUATION_SET_COLUMNS = ARTIFACTS["evaluation_set"].kinds()
PRESELECTED_COLUMNS = PRESELECTED.kinds("event_id", "group", "weight", "myy")
PSEUDODATA_COLUMNS = ARTIFACTS["pseudodata"].kinds("event_id", "myy", "is_signal", "group")
TEMPLATE_COLUMNS = ARTIFACTS["template"].kinds("myy", "weight", "source")


def markdown_table(name: str) -> str:
    """The Markdown column table of artifact `name` (as in docs/data-contracts.md)."""
    art = ARTIFACTS[name]
    lines = ["| column | type | meaning |", "|---|---|---|"]
    lines += [f"| `{c.name}` | {c.dtype} | {c.meaning} |" for c in art.columns]
    return "\n".join(lines)


BLOCK = "<!-- contracts:{name} (generated: python -m salad contracts --write FILE) -->"
BLOCK_END = "<!-- /contracts -->"


def render_doc(text: str) -> str:
    """`text` (docs/data-contracts.md) with every generated block replaced by the table of its
    artifact; SaladError for an unknown artifact name or an unterminated block."""
    out, rest = [], text
    head = BLOCK.split("{name}")[0]
    while head in rest:
        before, after = rest.split(head, 1)
        name = after.split(" ", 1)[0]
        if name not in ARTIFACTS:
            raise SaladError(f"data contracts doc: unknown artifact {name!r}")
        if BLOCK_END not in after:
            raise SaladError(f"data contracts doc: block {name!r} has no {BLOCK_END}")
        rest = after.split(BLOCK_END, 1)[1]
        out += [before, BLOCK.format(name=name), "\n", markdown_table(name), "\n", BLOCK_END]
    return "".join(out) + rest


def cli(argv: list[str]) -> None:
    """`salad contracts --markdown` prints every artifact's column table; `--write FILE`
    regenerates the tables inside FILE's generated blocks (docs/data-contracts.md)."""
    import argparse

    from .artifacts import atomic_output

    parser = argparse.ArgumentParser(prog="salad contracts", description=cli.__doc__)
    parser.add_argument("--markdown", action="store_true", help="print the column tables")
    parser.add_argument("--write", help="regenerate the generated blocks of this Markdown file")
    args = parser.parse_args(argv)
    if args.markdown:
        for name, art in ARTIFACTS.items():
            print(f"## {name}: `{art.path}` ({art.module})\n\n{markdown_table(name)}\n")
    if args.write:
        from pathlib import Path

        text = Path(args.write).read_text()
        with atomic_output(args.write) as tmp:
            tmp.write_text(render_doc(text))


def sample_code(event_ids) -> np.ndarray:
    """Sample code of each event id (event_id // EVENT_ID_STRIDE)."""
    return np.asarray(event_ids, np.int64) // EVENT_ID_STRIDE


# ---------------------------------------------------------------- regions
def in_signal_region(myy, signal_region: Sequence[float]) -> np.ndarray:
    """Boolean mask: m_yy [GeV] in the signal region [lo, hi)."""
    lo, hi = signal_region
    myy = np.asarray(myy)
    return (myy >= lo) & (myy < hi)


def region_masks(
    myy, signal_region: Sequence[float], window: Sequence[float]
) -> tuple[np.ndarray, np.ndarray]:
    """Boolean masks (SR, SB) for masses in GeV: SR = [lo, hi), SB = rest of the window."""
    lo, hi = signal_region
    wlo, whi = window
    if not (wlo < lo < hi < whi):
        raise SaladError(
            f"regions.signal_region: {list(signal_region)} must lie inside preselect.myy_range {list(window)}"
        )
    myy = np.asarray(myy)
    sr = in_signal_region(myy, signal_region)
    return sr, (myy >= wlo) & (myy <= whi) & ~sr


# ---------------------------------------------------------------- preselected ⋈ split
def join_subsets(events: pd.DataFrame, split: Sequence, preselected: Sequence) -> pd.DataFrame:
    """`events` with the `subset` of each event from the split file(s): the ids must match."""
    names = ", ".join(map(str, split))
    pre = ", ".join(map(str, preselected))
    subsets = pd.concat([read_parquet(p, SPLIT.kinds()) for p in split], ignore_index=True)
    if subsets["event_id"].duplicated().any():
        raise SaladError(f"{names}: duplicate event_id values")
    bad = set(subsets["subset"].astype(str)) - set(SUBSETS)
    if bad:
        raise SaladError(f"{names}: unknown subset value(s) {sorted(bad)}")
    merged = events.merge(subsets, on="event_id", how="left", validate="one_to_one")
    missing = int(merged["subset"].isna().sum())
    other = len(subsets) - (len(events) - missing)
    if other:
        raise SaladError(
            f"{names}: event ids do not match {pre} ({missing} event(s) without a "
            f"subset, {other} split row(s) of other events); re-run the split"
        )
    if missing:
        raise SaladError(f"{names}: {missing} event(s) of {pre} have no subset; re-run the split")
    merged["subset"] = merged["subset"].astype(str)
    return merged


def read_events(preselected: Sequence, split: Sequence | None, columns: Mapping[str, str]) -> pd.DataFrame:
    """Preselected files (concatenated; `columns` {name: kind}, event_id always) joined with
    their split file(s) on event_id: one row per preselected event, plus `subset`. Every event
    must have exactly one split row and every split row an event (`split` None: no join)."""
    preselected = list(preselected)
    if not preselected:
        raise SaladError("no preselected input files")
    kinds = {"event_id": "int", **columns}
    events = pd.concat([read_parquet(p, kinds) for p in preselected], ignore_index=True)
    if events["event_id"].duplicated().any():
        raise SaladError(f"{', '.join(map(str, preselected))}: duplicate event_id values")
    return events if split is None else join_subsets(events, list(split), preselected)


#: the columns every event table of a set of samples carries (salad.contracts.read_events)
EVENT_COLUMNS = PRESELECTED.kinds("event_id", "sample", "group", "weight")


def read_objects(preselected: Sequence, split: Sequence) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Events table (EVENT_COLUMNS + subset; group int64), object tensors (n, 11, 12) float32 and the
    high-level (dR_yy, pT_yy [GeV]) (n, 2) float32 of the preselected files, in file order."""
    frame = read_events(
        preselected, split, {**EVENT_COLUMNS, "dr_yy": "float", "pt_yy": "float", "objects": "list"}
    )
    source = ", ".join(map(str, preselected))
    objects = list_column_to_array(source, frame["objects"], (N_OBJECTS, N_FEATURES))
    hl = frame[["dr_yy", "pt_yy"]].to_numpy(np.float32)
    frame["group"] = frame["group"].astype(int)  # int64, as the tables built from it store
    return frame.drop(columns=["objects", "dr_yy", "pt_yy"]), objects, hl


def read_split_sample(preselected, split) -> pd.DataFrame:
    """One sample's preselected events (event_id, group, weight [events per fb^-1], myy [GeV],
    sample if stored) joined with their split `subset`; every event must have one."""
    kinds = dict(PRESELECTED_COLUMNS)
    if "sample" in parquet_columns(preselected):
        kinds["sample"] = "str"
    frame = read_events([preselected], [split], kinds)
    if "sample" in frame:
        frame["sample"] = frame["sample"].astype(str)
    return frame


def select_subsets(frame: pd.DataFrame, subsets: Sequence[str], source: str) -> pd.DataFrame:
    """Rows of `frame` (read_split_sample) in `subsets`, with `subset_fraction` = (sum of their
    weights) / (sum of all weights): weight / subset_fraction is then the expected yield per
    fb^-1 that each chosen event stands for."""
    total = frame["weight"].sum()
    chosen = frame[frame["subset"].isin(list(subsets))].copy()
    if total <= 0 or chosen.empty or chosen["weight"].sum() <= 0:
        raise SaladError(f"{source}: no weighted events in subset(s) {list(subsets)}")
    chosen["subset_fraction"] = chosen["weight"].sum() / total
    return chosen


# ---------------------------------------------------------------- embeddings
def latent_columns(names, source="embeddings", prefix: str = LATENT_PREFIX) -> list[str]:
    """The latent columns {prefix}0..{prefix}{d-1} among `names` (column names or a frame), in
    index order; error if absent or gapped."""
    pattern = re.compile(rf"^{re.escape(prefix)}(\d+)$")
    idx = sorted(int(m.group(1)) for c in names if (m := pattern.match(str(c))))
    if not idx or idx != list(range(len(idx))):
        raise SaladError(
            f"{source}: expected latent columns {prefix}0..{prefix}{{d-1}}, found {idx or 'none'}"
        )
    return [f"{prefix}{i}" for i in idx]


def read_embeddings(path, means: bool = False) -> pd.DataFrame:
    """Embeddings artifact: event_id + float latent columns z0.. (checked, finite, unique ids).
    means=True reads the latent means mu0.. instead where the file has them (a variational
    encoder whose z is a sampled draw, see salad.encoder.embed)."""
    read_parquet(path, {"event_id": "int"})  # existence, readability, id column
    names = parquet_columns(path)
    prefix = MEAN_PREFIX if means and f"{MEAN_PREFIX}0" in names else LATENT_PREFIX
    cols = latent_columns(names, str(path), prefix)
    frame = read_parquet(path, {"event_id": "int", **{c: "float" for c in cols}})
    if frame["event_id"].duplicated().any():
        raise SaladError(f"{path}: duplicate event_id values")
    return frame


def read_latent(path, means: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(event_id int64 (n,), latent float32 (n, d)) of an embeddings file (see read_embeddings)."""
    frame = read_embeddings(path, means)
    return frame["event_id"].to_numpy(np.int64), frame.iloc[:, 1:].to_numpy(np.float32)


def lookup(path, ids: np.ndarray, table_ids: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Rows of `values` (keyed by `table_ids`) for event ids `ids`; SaladError if any is missing."""
    order = np.argsort(table_ids)
    pos = np.searchsorted(table_ids, ids, sorter=order)
    pos = np.clip(pos, 0, len(table_ids) - 1)
    found = order[pos] if len(table_ids) else np.zeros(len(ids), int)
    if len(table_ids) == 0 or not np.array_equal(table_ids[found], ids):
        missing = int(len(ids) - np.isin(ids, table_ids).sum())
        raise SaladError(f"{path}: {missing} requested event id(s) not found")
    return values[found]


def latent_for(path, ids: np.ndarray, means: bool = False) -> np.ndarray:
    """Latent vectors (len(ids), d) float64 of the events `ids` from an embeddings file."""
    table_ids, z = read_latent(path, means)
    return lookup(path, np.asarray(ids, np.int64), table_ids, z).astype(np.float64)


def attach_latent(events: pd.DataFrame, emb: pd.DataFrame, source: str) -> pd.DataFrame:
    """Left join of `events` with latent rows by event_id; every event must be embedded."""
    merged = events.merge(emb, on="event_id", how="left", validate="one_to_one")
    cols = latent_columns(emb.columns)
    missing = merged[cols[0]].isna()
    if missing.any():
        raise SaladError(
            f"{source}: {int(missing.sum())} event(s) have no embedding "
            f"(e.g. event_id {int(merged.loc[missing, 'event_id'].iloc[0])})"
        )
    return merged


# ---------------------------------------------------------------- other artifacts
#: key of the JSON run summary in a generated ROOT file (written by salad.generate)
GENERATION_SUMMARY_KEY = "salad_generation"


def read_summary(path) -> dict:
    """The run summary stored in a generated ROOT file (results/generated/{sample}.root)."""
    import json

    import uproot

    try:
        with uproot.open(path) as f:
            return json.loads(str(f[GENERATION_SUMMARY_KEY]))
    except (OSError, KeyError, ValueError) as exc:
        raise SaladError(f"{path}: no salad generation summary ({exc})") from None


def sample_xsec_fb(spec: Mapping, root_path=None) -> float:
    """sigma x BR [fb] used for weights: `xsec_fb` from the table, or (null) the generator's
    own cross section from the file's summary times `k_factor`."""
    if spec.get("xsec_fb") is not None:
        return float(spec["xsec_fb"])
    if root_path is None:
        raise SaladError(
            f"processes: {spec.get('name', '?')}: xsec_fb is null; "
            "the generated file is needed for the generator cross section"
        )
    return read_summary(root_path)["sigma_gen_pb"] * 1e3 * float(spec.get("k_factor", 1.0))


def dataset_parts(path) -> tuple[str, str, str]:
    """(signal, strength label, instance) of a pseudo-data path .../{signal}/{strength}/{instance}.parquet."""
    parts = Path(path).parts
    if len(parts) < 3 or Path(path).suffix != ".parquet":
        raise SaladError(f"{path}: expected .../{{signal}}/{{strength}}/{{instance}}.parquet")
    signal, strength, instance = parts[-3], parts[-2], Path(parts[-1]).stem
    try:
        float(strength), int(instance)
    except ValueError:
        raise SaladError(f"{path}: cannot read strength/instance from the path") from None
    return signal, strength, instance


def read_pseudodata(path) -> pd.DataFrame:
    """Pseudo-data events: event_id, myy [GeV], is_signal, group (truth: evaluation only)."""
    data = read_parquet(path, PSEUDODATA_COLUMNS)
    if data["event_id"].duplicated().any():
        raise SaladError(f"{path}: an event appears more than once")
    return data


def read_template(path, columns) -> pd.DataFrame:
    """sample_sr artifact: `columns` (latent, float) + myy [GeV], weight, source (checked)."""
    return read_parquet(path, {**TEMPLATE_COLUMNS, **{c: "float" for c in columns}})


def read_evaluation_set(path) -> pd.DataFrame:
    """The evaluation set: SR events with event_id, sample, group, is_signal, myy [GeV] and
    weight [expected events per fb^-1 the event stands for]; checked against the contract."""
    frame = read_parquet(path, EVALUATION_SET_COLUMNS)
    if frame["event_id"].duplicated().any():
        raise SaladError(f"{path}: duplicate event_id values")
    return frame
