"""Small synthetic Delphes-layout ROOT files for tests (any stage may use them).

Layout as docs/data-contracts.md, written with uproot: tree `Delphes`, counters `<Coll>_size`,
leaves `<Coll>/<Coll>.<Field>`; `Event` is a one-entry collection (as real Delphes, so coffea's
DelphesSchema reads it); N-subjettiness as `Tau1..Tau5` leaves (uproot cannot write jagged
fixed-size arrays such as `Tau[5]`).

    events = random_events(1000, seed=1)          # dict of awkward arrays, Delphes field names
    write_delphes(tmp_path / "x.root", events)
    write_delphes(path, events_from_dicts([{"Photon": [dict(PT=60, Eta=0, Phi=0, E=60)]}]))
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from pathlib import Path

import awkward as ak
import numpy as np
import uproot

_JET = ("PT", "Eta", "Phi", "Mass", "BTag", "Tau1", "Tau2", "Tau3", "Tau4", "Tau5")
COLLECTIONS = {
    "Photon": ("PT", "Eta", "Phi", "E"),
    "Electron": ("PT", "Eta", "Phi", "Charge"),
    "Muon": ("PT", "Eta", "Phi", "Charge"),
    "Jet": _JET,
    "FatJet": _JET,
    "MissingET": ("MET", "Eta", "Phi"),
}
_INT_FIELDS = {"BTag", "Charge"}


def _dtype(field: str):
    return np.int32 if field in _INT_FIELDS else np.float32


def events_from_dicts(events: Iterable[Mapping], number_start: int = 0) -> dict[str, ak.Array]:
    """Hand-built events: [{"Photon": [{PT:..,Eta:..,Phi:..,E:..}, ...], "Jet": [...], ...}].

    Missing collections are empty (MissingET defaults to one zero entry); missing fields 0;
    "Number"/"Weight" keys per event override the defaults (number_start + index, 1.0).
    """
    events = list(events)
    out: dict[str, ak.Array] = {}
    for coll, fields in COLLECTIONS.items():
        default = [{}] if coll == "MissingET" else []
        lists = [ev.get(coll, default) for ev in events]
        counts = np.array([len(x) for x in lists], np.int64)
        out[coll] = ak.zip(
            {
                f: ak.unflatten(
                    np.array([float(o.get(f, 0)) for x in lists for o in x], dtype=_dtype(f)), counts
                )
                for f in fields
            }
        )
    out["Number"] = np.array([ev.get("Number", number_start + i) for i, ev in enumerate(events)], np.int64)
    out["Weight"] = np.array([ev.get("Weight", 1.0) for ev in events], np.float32)
    return out


def _jagged(rng, counts, fields, make):
    total = int(counts.sum())
    return ak.zip({f: ak.unflatten(make(f, total).astype(_dtype(f)), counts) for f in fields})


def random_events(
    n: int, seed: int = 0, weights: str = "ones", number_start: int = 0, myy_center: float = 125.0
) -> dict[str, ak.Array]:
    """`n` random events; roughly half pass paper A's preselection.

    Photons: 0-4 per event, the first two with a pair mass near `myy_center` or flat; jets,
    fat jets, leptons with random multiplicities; weights "ones" or "random" (0.5-1.5).
    Collections are pT ordered.
    """
    rng = np.random.default_rng(seed)
    out: dict[str, ak.Array] = {}
    # photons: build a resonant or continuum pair, plus extra soft photons
    n_ph = rng.choice([0, 1, 2, 2, 2, 3, 3, 4], size=n)
    mass = np.where(rng.random(n) < 0.5, rng.normal(myy_center, 2.0, n), rng.uniform(90, 180, n))
    pt1 = mass * rng.uniform(0.3, 0.9, n)
    pt2 = mass * rng.uniform(0.2, 0.6, n)
    eta = rng.uniform(-2.3, 2.3, (n, 4))
    phi = rng.uniform(-np.pi, np.pi, (n, 4))
    pts = np.stack([pt1, pt2, rng.uniform(5, 40, n), rng.uniform(5, 30, n)], axis=1)
    pts = -np.sort(-pts, axis=1)
    keep = np.arange(4)[None, :] < n_ph[:, None]
    counts = keep.sum(axis=1)
    ph = {"PT": pts[keep], "Eta": eta[keep], "Phi": phi[keep]}
    ph["E"] = ph["PT"] * np.cosh(ph["Eta"])
    out["Photon"] = ak.zip({f: ak.unflatten(ph[f].astype(np.float32), counts) for f in COLLECTIONS["Photon"]})

    def make(field, total, kind):
        if field == "PT":
            return np.sort(rng.exponential(40.0 if kind != "FatJet" else 120.0, total) + 20.0)[::-1]
        if field == "Eta":
            return rng.uniform(-2.5, 2.5, total)
        if field == "Phi":
            return rng.uniform(-np.pi, np.pi, total)
        if field == "Mass":
            return rng.uniform(2.0, 20.0 if kind == "Jet" else 150.0, total)
        if field == "BTag":
            return (rng.random(total) < 0.2).astype(np.int64)
        if field == "Charge":
            return rng.choice([-1, 1], total)
        if field.startswith("Tau"):  # decreasing τ1 > τ2 > ... > 0
            k = int(field[3:])
            return 0.5**k * rng.uniform(0.5, 1.0, total)
        raise KeyError(field)

    for coll, mean in (("Jet", 2.5), ("FatJet", 0.6), ("Electron", 0.3), ("Muon", 0.3)):
        c = rng.poisson(mean, n).astype(np.int64)
        arr = _jagged(rng, c, COLLECTIONS[coll], lambda f, t, coll=coll: make(f, t, coll))
        order = ak.argsort(arr.PT, axis=1, ascending=False)
        out[coll] = arr[order]
    ones = np.ones(n, np.int64)
    out["MissingET"] = ak.zip(
        {
            "MET": ak.unflatten(rng.exponential(30.0, n).astype(np.float32), ones),
            "Eta": ak.unflatten(np.zeros(n, np.float32), ones),
            "Phi": ak.unflatten(rng.uniform(-np.pi, np.pi, n).astype(np.float32), ones),
        }
    )
    out["Number"] = number_start + np.arange(n, dtype=np.int64)
    out["Weight"] = (np.ones(n) if weights == "ones" else rng.uniform(0.5, 1.5, n)).astype(np.float32)
    return out


def write_delphes(
    path,
    events: Mapping[str, ak.Array],
    tree: str = "Delphes",
    drop: Iterable[str] = (),
    basket_size: int = 1000,
    flat_event: bool = False,
    tau_array: bool = False,
    metadata: Mapping[str, str] | None = None,
) -> Path:
    """Write `events` (from random_events/events_from_dicts) as a Delphes-layout ROOT file.

    drop: leaf names to leave out (e.g. "Photon/Photon.E"); basket_size: entries per
    `extend` call (several baskets exercise chunked reading); flat_event: Event.Number and
    Event.Weight as plain per-event branches instead of a one-entry collection; tau_array:
    N-subjettiness as real Delphes' `Coll/Coll.Tau[5]` (through salad.generate's work-around
    for uproot's writer); metadata: {key: string} objects stored next to the tree (TObjString).
    """
    path = Path(path)
    drop = set(drop)
    n = len(events["Number"])
    columns: dict[str, np.ndarray | ak.Array] = {}
    ones = np.ones(n, np.int64)
    for field in ("Number", "Weight"):
        name = f"Event/Event.{field}"
        columns[name] = events[field] if flat_event else ak.unflatten(events[field], ones)
    if not flat_event:
        columns["Event_size"] = ones.astype(np.int32)
    for coll, fields in COLLECTIONS.items():
        columns[f"{coll}_size"] = ak.to_numpy(ak.num(events[coll], axis=1)).astype(np.int32)
        taus = [f for f in fields if f.startswith("Tau")]
        for field in fields:
            if not (tau_array and field in taus):
                columns[f"{coll}/{coll}.{field}"] = ak.values_astype(events[coll][field], _dtype(field))
        if tau_array and taus:
            stacked = ak.concatenate([events[coll][f][..., np.newaxis] for f in taus], axis=2)
            columns[f"{coll}/{coll}.Tau[5]"] = ak.values_astype(ak.to_regular(stacked, axis=2), np.float32)
    columns = {k: v for k, v in columns.items() if k not in drop}
    types = {k: (v.dtype if isinstance(v, np.ndarray) else v.type.content) for k, v in columns.items()}
    workaround = contextlib.nullcontext()
    if tau_array:
        from salad.generate import _fixed_size_members as workaround_factory

        workaround = workaround_factory()
    with uproot.recreate(path) as handle, workaround:
        out = handle.mktree(tree, types, counter_name=lambda c: c.split("/")[0] + "_size")
        for start in range(0, max(n, 1), basket_size):
            out.extend({k: v[start : start + basket_size] for k, v in columns.items()})
        for key, text in (metadata or {}).items():
            handle[key] = text
    return path
