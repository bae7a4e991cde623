"""Stage `generate`: Pythia 8 events -> parametric detector -> Delphes-layout ROOT file.

    python -m salad generate --sample ggH --processes config/processes.yaml \
        --output results/generated/ggH.root --config '{"generate": {...}}' [--threads 1]

Each process of the table (config/processes.yaml) gives Pythia `readString` lines, an
optional SLHA spectrum (written next to the output at run time), a Higgs decay mode
(`higgs: forced_yy` | `biased_yy` | `none`) and an optional process-level diphoton veto.
Events are generated in batches (`nextBatch`), reconstructed by `salad.detector`, and
appended to the tree `Delphes` (one extend per batch, so memory stays flat). Contract:
docs/data-contracts.md; the ROOT file also holds a TObjString `salad_generation` (JSON:
process, seed, event counts, generator cross section in pb).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

import awkward as ak
import numpy as np

from . import __version__, slha
from .artifacts import atomic_output, config_hash
from .config import parse_stage_config, process_table_arg
from .contracts import GENERATION_SUMMARY_KEY
from .detector import Collection, Detector, DetectorConfig, FinalState, heavy_flavour_label, pt_eta_phi
from .errors import SaladError

TREE = "Delphes"

#: Settings shared by every process: 13 TeV, A14 tune, quiet, seeded.
COMMON_SETTINGS = (
    "Beams:eCM = 13000.",
    "Tune:pp = 21",
    "Next:numberCount = 0",
    "Next:numberShowEvent = 0",
    "Next:numberShowInfo = 0",
    "Next:numberShowProcess = 0",
    "Init:showChangedSettings = off",
    "Init:showChangedParticleData = off",
    "Init:showProcesses = off",
    "Print:quiet = on",
    "Random:setSeed = on",
)

#: YR4 branching ratios of a 125 GeV Higgs (the channels Pythia decays it to).
HIGGS_BR = {
    (5, -5): 0.5824,
    (24, -24): 0.2137,
    (21, 21): 0.08187,
    (15, -15): 0.06272,
    (4, -4): 0.02891,
    (23, 23): 0.02619,
    (22, 22): 0.00227,
    (22, 23): 0.001533,
    (13, -13): 0.0002176,
    (3, -3): 0.000246,
}
BR_YY = HIGGS_BR[(22, 22)]
HIGGS_MODES = ("forced_yy", "biased_yy", "none")
SPEC_KEYS = {
    "code",
    "group",
    "label",
    "pythia",
    "higgs",
    "biased_br_yy",
    "slha",
    "hook",
    "xsec_fb",
    "k_factor",
    "note",
}
#: Give up when the process-level veto rejects this many trials in a row.
MAX_CONSECUTIVE_VETOES = 200_000
#: Code-level defaults of config `generate` (the schema documents the same values).
DEFAULTS = {"batch_size": 500, "mpi": False, "seed": 1000, "events_per_sample": {}, "detector": {}}


# --------------------------------------------------------------------------- process table
def process_spec(processes: Mapping, name: str, source: str = "processes") -> dict:
    """The checked spec of process `name` (SaladError if unknown or malformed)."""
    if name not in processes:
        raise SaladError(f"{source}: unknown process {name!r}; known: {', '.join(processes)}")
    spec = processes[name]
    where = f"{source}: process {name}"
    if not isinstance(spec, dict):
        raise SaladError(f"{where}: expected a mapping")
    unknown = sorted(set(spec) - SPEC_KEYS)
    if unknown:
        raise SaladError(f"{where}: unknown key(s) {', '.join(unknown)}")
    for key in ("code", "group", "pythia"):
        if key not in spec:
            raise SaladError(f"{where}: missing key {key!r}")
    lines = spec["pythia"]
    if isinstance(lines, list):  # YAML anchors give nested lists: flatten one level
        lines = [s for item in lines for s in (item if isinstance(item, list) else [item])]
    if not isinstance(lines, list) or not all(isinstance(s, str) for s in lines):
        raise SaladError(f"{where}: 'pythia' must be a list of Pythia setting strings")
    if spec.get("higgs", "none") not in HIGGS_MODES:
        raise SaladError(f"{where}: 'higgs' must be one of {', '.join(HIGGS_MODES)}")
    if spec.get("xsec_fb") is not None and not spec["xsec_fb"] > 0:
        raise SaladError(f"{where}: 'xsec_fb' must be positive or null")
    return {"name": name, **spec, "pythia": lines}


# --------------------------------------------------------------------------- Pythia set-up
def higgs_settings(mode: str, biased_br_yy: float = 0.5) -> list[str]:
    """Pythia lines for the 125 GeV Higgs decay mode (see HIGGS_MODES)."""
    if mode == "forced_yy":
        return ["25:m0 = 125.0", "25:onMode = off", "25:onIfMatch = 22 22"]
    if mode == "biased_yy":
        scale = (1 - biased_br_yy) / (1 - BR_YY)
        lines = ["25:m0 = 125.0", f"25:oneChannel = 1 {biased_br_yy:.6f} 100 22 22"]
        return lines + [
            f"25:addChannel = 1 {br * scale:.8f} 100 {a} {b}"
            for (a, b), br in HIGGS_BR.items()
            if (a, b) != (22, 22)
        ]
    return []


def _diphoton_veto_class():
    import pythia8mc

    class DiphotonProcessVeto(pythia8mc.UserHooks):
        """Veto at process level (after resonance decays, before showers) unless a photon pair
        has |eta| < eta_max, mass in mass_range and pT/m above pt_over_m (leading, subleading).
        Gives up vetoing after MAX_CONSECUTIVE_VETOES rejections in a row (sets `stuck`)."""

        def __init__(self, pt_over_m=(0.25, 0.15), eta_max=2.6, mass_range=(95.0, 175.0)):
            pythia8mc.UserHooks.__init__(self)
            self.r1, self.r2 = pt_over_m
            self.eta_max = eta_max
            self.m2_lo, self.m2_hi = mass_range[0] ** 2, mass_range[1] ** 2
            self.in_a_row = 0
            self.stuck = False

        def canVetoProcessLevel(self):
            return True

        def doVetoProcessLevel(self, process):
            photons = [
                process[i]
                for i in range(process.size())
                if process[i].id() == 22 and process[i].isFinal() and abs(process[i].eta()) < self.eta_max
            ]
            for i, a in enumerate(photons):
                for b in photons[i + 1 :]:
                    m2 = (
                        (a.e() + b.e()) ** 2
                        - (a.px() + b.px()) ** 2
                        - (a.py() + b.py()) ** 2
                        - (a.pz() + b.pz()) ** 2
                    )
                    if self.m2_lo < m2 < self.m2_hi:
                        hi, lo = max(a.pT(), b.pT()), min(a.pT(), b.pT())
                        if hi > self.r1 * m2**0.5 and lo > self.r2 * m2**0.5:
                            self.in_a_row = 0
                            return False
            self.in_a_row += 1
            if self.in_a_row >= MAX_CONSECUTIVE_VETOES:
                self.stuck = True  # let events through; the caller raises SaladError
                return False
            return True

    return DiphotonProcessVeto


def pythia_settings(spec: Mapping, seed: int, mpi: bool, slha_path: Path | None) -> list[str]:
    """All readString lines for a process spec."""
    lines = list(COMMON_SETTINGS) + [f"Random:seed = {seed}"]
    if not mpi:
        lines.append("PartonLevel:MPI = off")
    if slha_path is not None:
        lines += [f"SLHA:file = {slha_path}", "SLHA:minMassSM = 1000.", "SLHA:verbose = 0"]
    lines += list(spec["pythia"])
    return lines + higgs_settings(spec.get("higgs", "none"), spec.get("biased_br_yy", 0.5))


def make_pythia(spec: Mapping, seed: int, mpi: bool, workdir: Path):
    """An initialised Pythia for `spec` and its hook (or None). SaladError on bad settings."""
    import pythia8mc

    name = spec["name"]
    slha_path = None
    if spec.get("slha"):
        slha_path = slha.write(spec["slha"], workdir / f"{name}.slha", f"processes: {name}.slha")
    pythia = pythia8mc.Pythia("", False)
    for line in pythia_settings(spec, seed, mpi, slha_path):
        if not pythia.readString(line):
            raise SaladError(f"processes: {name}: Pythia rejected setting {line!r}")
    hook = None
    if spec.get("hook"):
        options = dict(spec["hook"])
        if set(options) != {"diphoton_veto"}:
            raise SaladError(f"processes: {name}: hook must be {{diphoton_veto: {{...}}}}")
        try:
            hook = _diphoton_veto_class()(**(options["diphoton_veto"] or {}))
        except (TypeError, ValueError) as exc:
            raise SaladError(f"processes: {name}: bad diphoton_veto options ({exc})") from None
        pythia.setUserHooksPtr(hook)
    if not pythia.init():
        raise SaladError(
            f"processes: {name}: Pythia initialisation failed "
            "(no process switched on, vanishing cross section or bad SLHA)"
        )
    return pythia, hook


# --------------------------------------------------------------------------- event conversion
def higgs_decay_weights(prt, biased_br_yy: float) -> np.ndarray:
    """Per-event weight undoing a biased H->yy branching ratio: product over decaying Higgs
    bosons of BR_SM/BR_gen (BR_SM(yy) = 2.27e-3; other modes scaled together)."""
    ids = prt.id
    n = ak.num(ids)
    d1 = ak.where((prt.daughter1 > 0) & (prt.daughter1 < n), prt.daughter1, 0)
    d2 = ak.where((prt.daughter2 > 0) & (prt.daughter2 < n), prt.daughter2, 0)
    decaying = (ids == 25) & (prt.daughter1 > 0) & (ids[d1] != 25)
    to_yy = decaying & (ids[d1] == 22) & (ids[d2] == 22)
    n_yy = ak.to_numpy(ak.sum(to_yy, axis=1))
    n_other = ak.to_numpy(ak.sum(decaying, axis=1)) - n_yy
    return (BR_YY / biased_br_yy) ** n_yy * ((1 - BR_YY) / (1 - biased_br_yy)) ** n_other


class _ChargeTable:
    """Electric charge by PDG id from Pythia's particle data (cached)."""

    def __init__(self, pythia):
        self._data, self._cache = pythia.particleData, {}

    def __call__(self, pid: np.ndarray) -> np.ndarray:
        uniq, inverse = np.unique(pid, return_inverse=True)
        values = np.array([self._cache.setdefault(int(u), self._data.charge(int(u))) for u in uniq])
        return values[inverse].astype(np.int32) if len(uniq) else np.zeros(0, np.int32)


def final_state(prt, charge: _ChargeTable, hadron_pt_min: float) -> FinalState:
    """Flatten a nextBatch particle record into a FinalState (status > 0 particles)."""
    fs = prt[prt.status > 0]

    def flat(x):
        return ak.to_numpy(ak.flatten(x)).astype(float)

    pid = ak.to_numpy(ak.flatten(fs.id)).astype(np.int64)
    all_pid = ak.to_numpy(ak.flatten(prt.id))
    flavour = heavy_flavour_label(all_pid)
    hpt, heta, hphi = pt_eta_phi(flat(prt.p.px), flat(prt.p.py), flat(prt.p.pz))
    hf = (flavour > 0) & (hpt > hadron_pt_min)
    all_evt = np.repeat(np.arange(len(prt)), ak.to_numpy(ak.num(prt)))
    return FinalState(
        counts=ak.to_numpy(ak.num(fs)).astype(np.int64),
        pid=pid,
        charge=charge(pid),
        px=flat(fs.p.px),
        py=flat(fs.p.py),
        pz=flat(fs.p.pz),
        e=flat(fs.p.e),
        hf_counts=np.bincount(all_evt[hf], minlength=len(prt)),
        hf_flavour=flavour[hf],
        hf_eta=heta[hf],
        hf_phi=hphi[hf],
    )


# --------------------------------------------------------------------------- Delphes writer
_DTYPES = {"BTag": np.uint32, "Charge": np.int32, "Number": np.int64}


def delphes_branches(collections: Mapping, event: Mapping) -> dict:
    """{collection: awkward record array (events x objects)} in the Delphes layout."""
    out = {}
    for name, coll in {**collections, "Event": event}.items():
        fields = {}
        for key, values in coll.fields.items():
            values = np.asarray(values).astype(_DTYPES.get(key, np.float32))
            fields[key] = ak.unflatten(values, coll.counts)
        out[name] = ak.zip(fields, depth_limit=2)
    return out


def _tree_types(branches: Mapping) -> dict:
    return {name: arr.type.content for name, arr in branches.items()}


class _ArrayMemberName(str):
    """Branch name like `Jet/Jet.Tau[5]` (Delphes' fixed-size member) whose leaf title must
    not repeat the `[5]`: uproot builds the leaf title as name + dims, so drop it there."""

    def __add__(self, dims):
        return str(self)[: str(self).rindex("[")] + dims


@contextlib.contextmanager
def _fixed_size_members():
    """Work around two uproot 5.7.7 (pinned) writer bugs for jagged fixed-size members such
    as Delphes' `Jet.Tau[5]`, active only while this context is open: the leaf title repeats
    `[5]` (readers would see 5x5) and basket entry offsets ignore the 5 values per object."""
    from uproot.writing import _cascadetree

    tree_cls = _cascadetree.Tree
    branch_np, jagged_basket = tree_cls._branch_np, tree_cls.write_jagged_basket

    def patched_branch_np(self, branch_name, *args, **kwargs):
        datum = branch_np(self, branch_name, *args, **kwargs)
        if branch_name.endswith("]") and datum["shape"]:
            datum["fName"] = _ArrayMemberName(branch_name)
            datum["fTitle"] = datum["fName"] + datum["fTitle"][len(branch_name) :]
        return datum

    def patched_jagged_basket(self, sink, branch_name, compression, array, offsets):
        shape = self._branch_data[self._branch_lookup[branch_name]]["shape"]
        return jagged_basket(
            self,
            sink,
            branch_name,
            compression,
            array,
            (offsets * int(np.prod(shape))).astype(offsets.dtype) if shape else offsets,
        )

    tree_cls._branch_np, tree_cls.write_jagged_basket = patched_branch_np, patched_jagged_basket
    try:
        yield
    finally:
        tree_cls._branch_np, tree_cls.write_jagged_basket = branch_np, jagged_basket


def _mktree(root, branches: Mapping):
    """Create the Delphes tree (collections as records: `<C>_size`, `<C>/<C>.<Field>`)."""
    return root.mktree(
        TREE,
        _tree_types(branches),
        field_name=lambda outer, inner: f"{outer}/{outer}.{inner}",
        counter_name=lambda counted: f"{counted}_size",
    )


# --------------------------------------------------------------------------- generation
def generate(
    spec: Mapping,
    n_events: int,
    seed: int,
    batch_size: int,
    mpi: bool,
    output_path: str | Path,
    detector: Mapping | None = None,
) -> dict:
    """Generate `n_events` events of process `spec` (from `process_spec`) into a Delphes ROOT
    file at `output_path` (atomic). Returns the run summary also stored in the file."""
    import uproot

    if n_events < 1 or batch_size < 1:
        raise SaladError("generate: events and batch_size must be >= 1")
    if not 0 <= seed <= 900_000_000:
        raise SaladError(f"generate.seed: Pythia seeds must lie in [0, 900000000], got {seed}")
    det = Detector(DetectorConfig.from_mapping(detector))
    rng = np.random.default_rng([seed, int(spec["code"])])
    output_path = Path(output_path)
    output_path.parent.mkdir(parents=True, exist_ok=True)
    biased = spec.get("higgs") == "biased_yy"
    start = time.perf_counter()
    with (
        tempfile.TemporaryDirectory(dir=output_path.parent, prefix=".slha-") as workdir,
        atomic_output(output_path) as tmp,
        uproot.recreate(tmp) as root,
        _fixed_size_members(),
    ):
        pythia, hook = make_pythia(spec, seed, mpi, Path(workdir))
        charge = _ChargeTable(pythia)
        done, tree = 0, None
        n_two_photons = 0
        sigma_pb = sigma_err_pb = 0.0
        while done < n_events:
            want = min(batch_size, n_events - done)
            batch = pythia.nextBatch(want)
            if hook is not None and hook.stuck:
                raise SaladError(
                    f"processes: {spec['name']}: diphoton_veto rejected "
                    f"{MAX_CONSECUTIVE_VETOES} events in a row; process cannot pass it"
                )
            if len(batch) == 0:
                raise SaladError(f"processes: {spec['name']}: Pythia produced no events")
            n = len(batch)
            weights = ak.to_numpy(batch.info.weights[:, 0]).astype(float)
            if biased:
                weights = weights * higgs_decay_weights(batch.prt, spec.get("biased_br_yy", 0.5))
            fs = final_state(batch.prt, charge, det.cfg.btag_hadron_pt_min)
            collections = det.reconstruct(fs, rng)
            n_two_photons += int((collections["Photon"].counts >= 2).sum())
            info = pythia.infoPython()
            sigma_pb, sigma_err_pb = info.sigmaGen() * 1e9, info.sigmaErr() * 1e9
            ones = np.ones(n, np.int64)
            event = Collection(
                ones,
                {
                    "Number": np.arange(done, done + n),
                    "Weight": weights,
                    "CrossSection": np.full(n, sigma_pb),
                    "CrossSectionError": np.full(n, sigma_err_pb),
                },
            )
            branches = delphes_branches(collections, event)
            if tree is None:
                tree = _mktree(root, branches)
            tree.extend(branches)
            done += n
        summary = {
            "process": spec["name"],
            "code": int(spec["code"]),
            "seed": seed,
            "mpi": mpi,
            "events": done,
            "tried": int(info.nTried()),
            "accepted": int(info.nAccepted()),
            "sigma_gen_pb": sigma_pb,
            "sigma_gen_err_pb": sigma_err_pb,
            "xsec_fb": spec.get("xsec_fb"),
            "k_factor": spec.get("k_factor", 1.0),
            "fraction_two_photons": n_two_photons / done,
            "seconds": round(time.perf_counter() - start, 3),
            "salad_version": __version__,
            "spec_hash": config_hash({k: v for k, v in spec.items()}),
            "detector": dict(det.cfg.__dict__),
        }
        root[GENERATION_SUMMARY_KEY] = json.dumps(summary, sort_keys=True, default=list)
    return summary


def sample_events(cfg: Mapping, sample: str) -> int:
    """Events to generate for `sample` (config generate.events_per_sample or .events)."""
    return int({**DEFAULTS, **cfg}.get("events_per_sample", {}).get(sample, cfg["events"]))


def cli(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(
        prog="salad generate", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sample", required=True, help="process name in the process table")
    parser.add_argument("--processes", help="process table YAML (or --spec)")
    parser.add_argument("--spec", help="the sample's process-table entry as JSON (or --processes)")
    parser.add_argument("--output", required=True, help="output ROOT file")
    parser.add_argument("--config", default=None, help='JSON {"generate": {...}}')
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="accepted for the rule interface; generation is single-threaded",
    )
    args = parser.parse_args(argv)
    cfg = parse_stage_config(args.config).get("generate")
    if not isinstance(cfg, dict) or "events" not in cfg:
        raise SaladError('--config: expected {"generate": {"events": ..., ...}}')
    cfg = {**DEFAULTS, **cfg}
    table, source = process_table_arg(args.processes, args.spec, args.sample)
    spec = process_spec(table, args.sample, source)
    summary = generate(
        spec,
        sample_events(cfg, args.sample),
        int(cfg["seed"]) + int(spec["code"]),
        int(cfg["batch_size"]),
        bool(cfg["mpi"]),
        args.output,
        cfg.get("detector"),
    )
    print(
        json.dumps(
            {k: summary[k] for k in ("process", "events", "sigma_gen_pb", "fraction_two_photons", "seconds")}
        )
    )
