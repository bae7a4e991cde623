"""Paper A's diphoton preselection: Delphes ROOT -> results/preselected/{sample}.parquet.

Per event (all momenta GeV):
1. candidate = the pair among the `n_photon_candidates` (3) leading photons whose invariant
   mass (from PT, Eta, Phi, E, as Delphes' P4) is closest to `higgs_mass`; its
   leading/subleading photon are y1/y2 (events with < 2 photons fail);
2. trigger: diphoton (pT(y1) > 35 and pT(y2) > 25) OR single photon (the event's leading
   photon, in the pair or not, pT > 140: a trigger sees every photon). NB: cuts 3 and 4 imply
   pT(y1) > 0.4*105 = 42 and pT(y2) > 31.5, so the final selection does not depend on this
   choice; only the cut-flow line "trigger" does;
3. pT(y1)/myy > 0.4 and pT(y2)/myy > 0.3;
4. 105 < myy < 160.
Output contract (docs/data-contracts.md): event_id, sample, group, weight, myy, photon
kinematics, pt_yy, dr_yy, objects (11x12 tensor, row-major, float32). A file without
a FatJet, Electron or Muon collection (stock Delphes cards have no FatJet) is read as if every
event had zero such objects; the cut flow's `missing_collections` lists them per file. Weight = σ×BR [fb] ×
Event.Weight / Σ Event.Weight over all events read, so Σ weight = expected events per fb⁻¹
after preselection. σ×BR: --xsec-fb, else the process table's `xsec_fb`, else (null) the
generator σ stored in the generated file (salad.contracts.sample_xsec_fb).
A cut-flow JSON (counts and expected events per fb⁻¹ after each cut) is written next to the Parquet file.

Event numbering: event_id = code * 10**9 + Event.Number for a single input file. With several
files (e.g. MadGraph runs, which restart Event.Number), the within-sample number is the
running entry index over the files in the given order (unique by construction).

Memory: input is read in chunks of `chunk_size` events (salad.delphes); only the compact
per-event output of passing events (≈ 0.6 kB each) is kept until the final write.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import awkward as ak
import numpy as np
import pyarrow as pa

from . import delphes
from .artifacts import atomic_output, provenance, write_parquet
from .config import parse_stage_config, process_table_arg
from .contracts import (
    EVENT_ID_STRIDE,
    FEATURES,
    N_FEATURES,
    N_OBJECTS,
    OBJECT_SLOTS,
    read_summary,
    sample_xsec_fb,
)
from .errors import SaladError

CUTS = ("all", "two_photons", "trigger", "pt_over_myy_lead", "pt_over_myy_sublead", "myy_window")
PHOTON_COLUMNS = ("pt_y1", "eta_y1", "phi_y1", "pt_y2", "eta_y2", "phi_y2")
FLOAT_COLUMNS = ("myy",) + PHOTON_COLUMNS + ("pt_yy", "dr_yy")

_JET_FIELDS = ("PT", "Eta", "Phi", "Mass", "BTag", "Tau2", "Tau3", "Tau4")
FIELDS = (
    ["Event.Number", "Event.Weight"]
    + [f"Photon.{f}" for f in ("PT", "Eta", "Phi", "E")]
    + [f"{c}.{f}" for c in ("Jet", "FatJet") for f in _JET_FIELDS]
    + [f"{c}.{f}" for c in ("Electron", "Muon") for f in ("PT", "Eta", "Phi")]
    + ["MissingET.MET", "MissingET.Phi"]
)
#: Collections a Delphes card may leave out (stock ATLAS/CMS cards have no FatJet): read as
#: zero objects, i.e. zero padding in the object tensor. All other FIELDS are required.
OPTIONAL_COLLECTIONS = ("FatJet", "Electron", "Muon")


def _jagged(array: ak.Array) -> tuple[np.ndarray, np.ndarray]:
    """(counts (events,) int64, flat values in their stored dtype) of a var-length array."""
    layout = ak.to_layout(array)
    if (
        isinstance(layout, ak.contents.ListOffsetArray)  # what uproot reads: no awkward calls
        and isinstance(layout.content, ak.contents.NumpyArray)
        and layout.content.data.ndim == 1
    ):
        offsets = np.asarray(layout.offsets.data, np.int64)
        return np.diff(offsets), np.asarray(layout.content.data[offsets[0] : offsets[-1]])
    return (
        np.asarray(ak.to_numpy(ak.num(array, axis=1)), np.int64),
        np.asarray(ak.to_numpy(ak.flatten(array, axis=None))),
    )


def _descending_within_events(key: np.ndarray, starts: np.ndarray) -> bool:
    """True when `key` (flat, events back to back; event i starts at starts[i]) never
    increases inside an event. NaN keys count as out of order (the sort is then needed)."""
    rising = ~(key[1:] <= key[:-1])  # also True where either side is NaN
    rising[starts[(starts > 0) & (starts < len(key))] - 1] = False  # event boundaries
    return not rising.any()


def _leading(
    data: Mapping[str, ak.Array],
    coll: str,
    fields: Sequence[str],
    n: int,
    pt: str = "PT",
    rows: np.ndarray | None = None,
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The `n` highest-pT objects of `coll` as (events, n) float64 arrays, NaN padded, + mask;
    only the events selected by the bool mask `rows` (all when None).

    Vectorised over all objects of the chunk (one stable sort by (event, -pT), as a stable
    descending ak.argsort orders them: ties keep the input order), no per-field awkward slicing."""
    counts, key = _jagged(data[f"{coll}.{pt}"])
    objects = None
    if rows is not None:
        objects = np.repeat(rows, counts)
        counts, key = counts[rows], key[objects]
    n_events = len(counts)
    event = np.repeat(np.arange(n_events), counts)
    starts = np.cumsum(counts) - counts
    if _descending_within_events(key, starts):  # Delphes stores pT-sorted collections
        order = np.arange(len(key))  # = the stable sort's order (ties keep the input order)
    else:
        order = np.lexsort((-key, event))  # within each event: pT descending
    rank = np.arange(len(order)) - starts[event]  # event[order] == event (sorted by event)
    take = rank < n
    ev, slot, src = event[take], rank[take], order[take]
    out = {}
    for field in fields:
        values = key if field == pt else _jagged(data[f"{coll}.{field}"])[1]
        if objects is not None and field != pt:
            values = values[objects]
        grid = np.full((n_events, n), np.nan)
        grid[ev, slot] = values[src]  # float64 as ak.values_astype gives
        out[field] = grid
    return out, ~np.isnan(out[pt])


def _four_vector(pt, eta, phi, e):
    return np.stack([pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta), e], axis=-1)


def _mass(p4: np.ndarray) -> np.ndarray:
    m2 = p4[..., 3] ** 2 - (p4[..., :3] ** 2).sum(axis=-1)
    return np.sqrt(np.clip(m2, 0.0, None))


def delta_phi(a, b):
    """φ difference wrapped to [-π, π)."""
    return (np.asarray(a) - np.asarray(b) + np.pi) % (2 * np.pi) - np.pi


def select(data: Mapping[str, ak.Array], cfg: Mapping) -> tuple[dict[str, np.ndarray], dict]:
    """Apply the preselection to one chunk.

    Returns (masks, candidate): masks[cut] is the cumulative (events,) bool mask after each
    of CUTS; candidate holds (events,) float64 arrays myy, pt_y1..phi_y2, pt_yy, dr_yy
    (NaN where fewer than 2 photons).
    """
    n_cand = int(cfg["n_photon_candidates"])
    ph, present = _leading(data, "Photon", ("PT", "Eta", "Phi", "E"), n_cand)
    n_events = len(present)
    two = present[:, :2].all(axis=1) if n_cand >= 2 else np.zeros(n_events, bool)
    # the pair search runs on the events with two photons only (the others fail cut 1)
    sub = {f: v[two] for f, v in ph.items()}
    p4 = _four_vector(sub["PT"], sub["Eta"], sub["Phi"], sub["E"])  # (events, n, 4)
    pairs = np.array(list(itertools.combinations(range(n_cand), 2)))  # (pairs, 2), i < j
    pair_p4 = p4[:, pairs[:, 0]] + p4[:, pairs[:, 1]]  # (events, pairs, 4)
    distance = np.abs(_mass(pair_p4) - float(cfg["higgs_mass"]))
    distance[np.isnan(distance)] = np.inf
    best = np.argmin(distance, axis=1)  # first pair on ties
    rows = np.arange(len(best))
    i, j = pairs[best, 0], pairs[best, 1]  # photons are pT sorted: i is the leader
    found = {"myy": _mass(pair_p4[rows, best])}
    for tag, k in (("y1", i), ("y2", j)):
        for col, field in (("pt", "PT"), ("eta", "Eta"), ("phi", "Phi")):
            found[f"{col}_{tag}"] = sub[field][rows, k]
    found["pt_yy"] = np.hypot(pair_p4[rows, best, 0], pair_p4[rows, best, 1])
    found["dr_yy"] = np.hypot(found["eta_y1"] - found["eta_y2"], delta_phi(found["phi_y1"], found["phi_y2"]))
    cand = {}
    for col, values in found.items():
        cand[col] = np.full(n_events, np.nan)
        cand[col][two] = values

    with np.errstate(invalid="ignore", divide="ignore"):
        (lead_trig, sub_trig), single = cfg["diphoton_trigger_pt"], cfg["single_photon_trigger_pt"]
        trigger = ((cand["pt_y1"] > lead_trig) & (cand["pt_y2"] > sub_trig)) | (ph["PT"][:, 0] > single)
        lead_frac, sub_frac = cfg["pt_over_myy"]
        lo, hi = cfg["myy_range"]
        steps = (
            two,
            trigger,
            cand["pt_y1"] / cand["myy"] > lead_frac,
            cand["pt_y2"] / cand["myy"] > sub_frac,
            (cand["myy"] > lo) & (cand["myy"] < hi),
        )
    masks, mask = {"all": np.ones(n_events, bool)}, np.ones(n_events, bool)
    for name, step in zip(CUTS[1:], steps):
        mask = mask & step
        masks[name] = mask
    return masks, cand


def object_tensor(data: Mapping[str, ak.Array], rows: np.ndarray | None = None) -> np.ndarray:
    """(events, 11, 12) float32 object tensor; see FEATURES and OBJECT_SLOTS. Padding = 0.
    rows: optional (events,) bool mask; then only those events, in order."""
    n_events = len(data["MissingET.MET"]) if rows is None else int(np.count_nonzero(rows))
    out = np.zeros((n_events, N_OBJECTS, N_FEATURES), np.float32)
    row = 0
    for type_index, (coll, n) in enumerate(OBJECT_SLOTS):
        block = out[:, row : row + n]
        if coll == "MissingET":
            obj, present = _leading(data, coll, ("MET", "Phi"), n, pt="MET", rows=rows)
            block[..., 0], block[..., 2] = obj["MET"], obj["Phi"]  # eta, mass stay 0
        else:
            jets = coll in ("Jet", "FatJet")
            fields = _JET_FIELDS if jets else ("PT", "Eta", "Phi")
            obj, present = _leading(data, coll, fields, n, rows=rows)
            block[..., 0], block[..., 1], block[..., 2] = obj["PT"], obj["Eta"], obj["Phi"]
            if jets:  # leptons keep mass 0 (Delphes P4), btag 0, tau 0
                block[..., 3] = obj["Mass"]
                block[..., 4] = np.where(present, np.nan_to_num(obj["BTag"]).astype(np.int64) & 1, 0)
                with np.errstate(invalid="ignore", divide="ignore"):
                    for col, num, den in ((5, "Tau3", "Tau2"), (6, "Tau4", "Tau3")):
                        ratio = obj[num] / obj[den]
                        block[..., col] = np.where(np.isfinite(ratio) & (obj[den] > 0), ratio, 0.0)
        block[..., 7 + type_index] = 1.0
        block[~present] = 0.0
        row += n
    return out


def _process_entry(table: Mapping, processes_path, sample: str) -> dict:
    entry = table.get(sample)
    if entry is None:
        raise SaladError(f"{processes_path}: no process {sample!r}")
    for key in ("code", "group"):
        if not isinstance(entry.get(key), int):
            raise SaladError(f"{processes_path}: process {sample!r} has no integer {key!r}")
    return entry


def resolve_xsec(
    sample: str, entry: Mapping, explicit: float | None, processes_path, root_path=None
) -> tuple[float, str]:
    """σ×BR [fb] and its source: --xsec-fb, else the process table's `xsec_fb`, else (null)
    the generator's σ stored in the generated ROOT file × `k_factor` (salad.generate)."""
    if explicit is not None:
        value, source = float(explicit), "--xsec-fb"
    elif entry.get("xsec_fb") is not None:
        value, source = float(entry["xsec_fb"]), f"{processes_path}: xsec_fb"
    elif root_path is not None:
        try:
            read_summary(root_path)
        except SaladError as exc:
            raise SaladError(
                f"{processes_path}: process {sample!r} has xsec_fb null and {exc}; "
                "set xsec_fb (σ×BR in fb) or pass --xsec-fb"
            ) from None
        value, source = sample_xsec_fb(entry, root_path), f"{root_path}: generator σ × k_factor"
    else:
        raise SaladError(
            f"{processes_path}: process {sample!r} has no xsec_fb; set it (σ×BR in fb) or pass --xsec-fb"
        )
    if not np.isfinite(value) or value <= 0:
        raise SaladError(f"{source}: σ×BR for {sample!r} must be a positive number of fb, got {value}")
    return value, source


def _check_finite(where, cols: Mapping[str, np.ndarray]) -> None:
    """Passing events must hold only finite numbers (NaN/inf in input leaves would otherwise
    reach every later stage, whose readers reject them far from the cause)."""
    for col in FLOAT_COLUMNS:
        bad = ~np.isfinite(cols[col])
        if bad.any():
            raise SaladError(
                f"{where}: {col} is NaN/inf in {int(bad.sum())} passing event(s); "
                "the input holds non-finite photon values"
            )
    objects = cols["objects"].reshape(-1, N_OBJECTS, N_FEATURES)
    bad = ~np.isfinite(objects)
    if bad.any():
        _, row, feature = np.argwhere(bad)[0]
        coll = next(
            c
            for c, end in zip((c for c, _ in OBJECT_SLOTS), np.cumsum([n for _, n in OBJECT_SLOTS]))
            if row < end
        )
        raise SaladError(
            f"{where}: NaN/inf in {coll} {FEATURES[feature]} of "
            f"{int(bad.any(axis=(1, 2)).sum())} passing event(s)"
        )


def preselect(
    paths: Sequence[str], sample: str, code: int, group: int, xsec_fb: float, cfg: Mapping
) -> tuple[pa.Table, dict]:
    """Run the preselection over `paths` (chunked); return (output table, cut-flow dict)."""
    chunk_size = int(cfg["chunk_size"])
    parts: dict[str, list] = {k: [] for k in ("number", "raw_weight", "objects", *FLOAT_COLUMNS)}
    counts = dict.fromkeys(CUTS, 0)
    wsums = dict.fromkeys(CUTS, 0.0)
    offset = 0
    missing: dict[str, list[str]] = {}
    for chunk in delphes.iterate(paths, FIELDS, chunk_size, optional=OPTIONAL_COLLECTIONS):
        if chunk.missing:
            missing[chunk.path] = list(chunk.missing)
        raw_w = ak.to_numpy(chunk.data["Event.Weight"]).astype(np.float64)
        with np.errstate(all="ignore"):  # NaN/inf inputs: reported by _check_finite, not warned
            masks, cand = select(chunk.data, cfg)
        for cut, mask in masks.items():
            counts[cut] += int(mask.sum())
            wsums[cut] += float(raw_w[mask].sum())
        keep = masks[CUTS[-1]]
        if len(paths) == 1:
            number = ak.to_numpy(chunk.data["Event.Number"]).astype(np.int64)
        else:
            number = offset + np.arange(len(chunk), dtype=np.int64)
        offset += len(chunk)
        parts["number"].append(number[keep])
        parts["raw_weight"].append(raw_w[keep])
        for col in FLOAT_COLUMNS:
            parts[col].append(cand[col][keep].astype(np.float32))
        with np.errstate(all="ignore"):
            tensor = object_tensor(chunk.data, keep)
        parts["objects"].append(tensor.reshape(int(keep.sum()), N_OBJECTS * N_FEATURES))
    where = paths[0] if len(paths) == 1 else f"{sample} ({len(paths)} files: {', '.join(map(str, paths))})"
    if counts["all"] == 0:
        raise SaladError(f"{where}: no events in tree {delphes.TREE!r}")
    if counts[CUTS[-1]] == 0:
        raise SaladError(f"{where}: 0 of {counts['all']} events passed the preselection (cut flow: {counts})")
    total_w = wsums["all"]
    if not np.isfinite(total_w) or total_w <= 0:
        raise SaladError(f"{where}: sum of Event.Weight over all events is {total_w}; must be > 0")
    cols = {k: np.concatenate(v) for k, v in parts.items()}
    _check_finite(where, cols)
    number = cols.pop("number")
    if number.min() < 0 or number.max() >= EVENT_ID_STRIDE:
        raise SaladError(f"{where}: Event.Number outside [0, 10**9)")
    event_id = code * EVENT_ID_STRIDE + number
    if len(np.unique(event_id)) != len(event_id):
        raise SaladError(f"{where}: Event.Number is not unique")
    n = len(event_id)
    flat = cols.pop("objects").reshape(-1)
    offsets = np.arange(0, n * N_OBJECTS * N_FEATURES + 1, N_OBJECTS * N_FEATURES, dtype=np.int32)
    table = pa.table(
        {
            "event_id": pa.array(event_id, pa.int64()),
            "sample": pa.array([sample] * n, pa.string()),
            "group": pa.array(np.full(n, group, np.int8)),
            "weight": pa.array(xsec_fb * cols.pop("raw_weight") / total_w, pa.float64()),
            **{c: pa.array(cols[c], pa.float32()) for c in FLOAT_COLUMNS},
            "objects": pa.ListArray.from_arrays(pa.array(offsets), pa.array(flat, pa.float32())),
        }
    )
    cutflow = {
        "sample": sample,
        "files": [str(p) for p in paths],
        "xsec_fb": xsec_fb,
        "n_events": counts["all"],
        "sum_generator_weights": total_w,
        "missing_collections": missing,
        "cuts": [
            {"cut": c, "events": counts[c], "expected_per_ifb": xsec_fb * wsums[c] / total_w} for c in CUTS
        ],
    }
    return table, cutflow


def cli(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(
        prog="salad preselect", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--input", nargs="+", required=True, help="Delphes ROOT file(s) of the sample")
    parser.add_argument("--sample", required=True, help="process table key")
    parser.add_argument("--processes", help="process table YAML (or --spec)")
    parser.add_argument("--spec", help="the sample's process-table entry as JSON (or --processes)")
    parser.add_argument("--output", required=True, help="results/preselected/{sample}.parquet")
    parser.add_argument("--cutflow", required=True, help="results/preselected/{sample}.cutflow.json")
    parser.add_argument(
        "--xsec-fb",
        type=float,
        default=None,
        help="σ×BR in fb; overrides the process table's xsec_fb and the "
        "generator σ (used when xsec_fb is null)",
    )
    parser.add_argument("--config", required=True, help='JSON {"preselect": {...}}')
    args = parser.parse_args(argv)
    stage_cfg = parse_stage_config(args.config)
    if "preselect" not in stage_cfg:
        raise SaladError("--config: missing section 'preselect'")
    cfg = stage_cfg["preselect"]
    table, table_source = process_table_arg(args.processes, args.spec, args.sample)
    entry = _process_entry(table, table_source, args.sample)
    root = args.input[0] if len(args.input) == 1 else None
    xsec, source = resolve_xsec(args.sample, entry, args.xsec_fb, table_source, root)
    start = time.perf_counter()
    table, cutflow = preselect(args.input, args.sample, entry["code"], entry["group"], xsec, cfg)
    seconds = time.perf_counter() - start
    cutflow.update(xsec_source=source, seconds=round(seconds, 3))
    write_parquet(table, args.output, provenance("preselect", stage_cfg, sample=args.sample, xsec_fb=xsec))
    with atomic_output(args.cutflow) as tmp:
        Path(tmp).write_text(json.dumps(cutflow, indent=1) + "\n")
    passed = cutflow["cuts"][-1]["events"]
    print(
        f"preselect {args.sample}: {passed} of {cutflow['n_events']} events passed "
        f"({cutflow['n_events'] / max(seconds, 1e-9):.0f} events/s); σ×BR = {xsec} fb ({source})"
    )
