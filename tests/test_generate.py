"""salad.generate: Pythia 8 + detector -> Delphes-layout ROOT (small runs, MPI off)."""

import json
import subprocess
import sys

import awkward as ak
import numpy as np
import pytest
import uproot
from coffea.nanoevents import DelphesSchema, NanoEventsFactory

from salad import generate as gen
from salad.config import REPO, load_processes
from salad.contracts import read_summary, sample_xsec_fb
from salad.errors import SaladError

PROCESSES = load_processes(REPO / "config" / "processes.yaml")
COLLECTIONS = ("Event", "Photon", "Electron", "Muon", "Jet", "FatJet", "MissingET")


def _run(tmp_path, name, n, seed=11, spec=None, **kw):
    spec = spec or gen.process_spec(PROCESSES, name)
    path = tmp_path / f"{name}_{seed}.root"
    return path, gen.generate(spec, n, seed, kw.pop("batch_size", 150), False, path, **kw)


@pytest.fixture(scope="module")
def ggh(tmp_path_factory):
    path, summary = _run(tmp_path_factory.mktemp("ggh"), "ggH", 400)
    return path, summary


def _arrays(path):
    with uproot.open(path) as f:
        return f["Delphes"].arrays(library="ak")


def test_delphes_layout_and_coffea(ggh):
    path, summary = ggh
    tree = uproot.open(path)["Delphes"]
    assert tree.num_entries == 400 == summary["events"]
    keys = set(tree.keys())
    for coll in COLLECTIONS:
        assert f"{coll}_size" in keys
    for branch in (
        "Photon/Photon.PT",
        "Photon/Photon.E",
        "Electron/Electron.Charge",
        "Jet/Jet.BTag",
        "Jet/Jet.Tau[5]",
        "FatJet/FatJet.Tau[5]",
        "MissingET/MissingET.MET",
        "Event/Event.Number",
        "Event/Event.Weight",
    ):
        assert branch in keys, branch
    events = NanoEventsFactory.from_root(
        {str(path): "Delphes"}, schemaclass=DelphesSchema, mode="eager"
    ).events()
    assert set(COLLECTIONS) <= set(events.fields)
    assert ak.all(ak.num(events.Photon) == tree["Photon_size"].array())
    assert ak.all(ak.num(events.Jet.Tau_5, axis=2) == 5)
    np.testing.assert_array_equal(ak.to_numpy(ak.flatten(events.Event.Number, axis=None)), np.arange(400))
    assert read_summary(path)["sigma_gen_pb"] > 0


def test_ggh_diphoton_peak_and_objects(ggh):
    a = _arrays(ggh[0])
    pt, eta, phi = a["Photon/Photon.PT"], a["Photon/Photon.Eta"], a["Photon/Photon.Phi"]
    two = ak.num(pt) >= 2
    assert 0.3 < ak.mean(two) < 0.6  # raw diphoton acceptance of H -> yy
    p1, p2 = ak.to_numpy(pt[two][:, 0]), ak.to_numpy(pt[two][:, 1])
    d_eta = ak.to_numpy(eta[two][:, 0] - eta[two][:, 1])
    d_phi = ak.to_numpy(phi[two][:, 0] - phi[two][:, 1])
    myy = np.sqrt(2 * p1 * p2 * (np.cosh(d_eta) - np.cos(d_phi)))
    assert abs(np.median(myy) - 125.0) < 1.0
    assert np.mean(np.abs(myy - 125.0) < 5.0) > 0.8
    for coll in ("Photon", "Jet", "FatJet", "Electron", "Muon"):
        col_pt = a[f"{coll}/{coll}.PT"]
        assert ak.all(col_pt[:, 1:] <= col_pt[:, :-1]), coll  # pT ordered
    assert ak.all(a["Jet/Jet.PT"] > 25.0)
    taus = ak.to_numpy(ak.flatten(a["FatJet/FatJet.Tau[5]"]))
    assert taus.shape[1] == 5 and len(taus) > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = taus[:, 1:] / taus[:, :-1]
    ratios = ratios[np.isfinite(ratios)]
    assert len(ratios) > 0 and np.all((ratios >= 0) & (ratios <= 1 + 1e-6))
    assert ak.all(a["MissingET_size"] == 1)


def test_deterministic(tmp_path):
    first, _ = _run(tmp_path / "a", "ttH", 60, seed=5, batch_size=25)
    second, _ = _run(tmp_path / "b", "ttH", 60, seed=5, batch_size=25)
    other, _ = _run(tmp_path / "c", "ttH", 60, seed=6, batch_size=25)
    a, b, c = _arrays(first), _arrays(second), _arrays(other)
    assert a.fields == b.fields
    for field in a.fields:
        assert ak.all(ak.flatten(a[field], axis=None) == ak.flatten(b[field], axis=None)), field
    assert not ak.array_equal(a["Jet/Jet.PT"], c["Jet/Jet.PT"])


def test_yy_veto_and_biased_higgs_weights(tmp_path):
    path, summary = _run(tmp_path, "yy", 100)
    assert summary["fraction_two_photons"] > 0.4  # veto keeps central diphoton events
    assert sample_xsec_fb(gen.process_spec(PROCESSES, "yy"), path) == pytest.approx(
        summary["sigma_gen_pb"] * 1e3
    )
    path, _ = _run(tmp_path, "stopRPC", 60)
    weights = np.unique(ak.to_numpy(ak.flatten(_arrays(path)["Event/Event.Weight"])))
    expected = {(gen.BR_YY / 0.5) ** k * ((1 - gen.BR_YY) / 0.5) ** (2 - k) for k in range(3)}
    assert all(min(abs(w - e) / e for e in expected) < 1e-5 for w in weights)


def test_bad_specs_raise(tmp_path):
    with pytest.raises(SaladError, match="unknown process"):
        gen.process_spec(PROCESSES, "nope")
    bad = {**gen.process_spec(PROCESSES, "ggH"), "pythia": ["HiggsSM:gg2Hxx = on"]}
    with pytest.raises(SaladError, match="rejected setting"):
        _run(tmp_path, "ggH", 10, spec=bad)
    nothing = {**gen.process_spec(PROCESSES, "ggH"), "pythia": ["HiggsSM:gg2H = off"]}
    with pytest.raises(SaladError, match="initialisation failed"):
        _run(tmp_path, "ggH", 10, spec=nothing)
    assert not list(tmp_path.glob("*.root")) and not list(tmp_path.glob(".*tmp*"))


def test_veto_guard_stops_impossible_process(tmp_path, monkeypatch):
    monkeypatch.setattr(gen, "MAX_CONSECUTIVE_VETOES", 300)
    gamma_jet = {
        **gen.process_spec(PROCESSES, "yy"),
        "name": "yj",
        "pythia": ["PromptPhoton:qg2qgamma = on", "PhaseSpace:pTHatMin = 30."],
    }
    with pytest.raises(SaladError, match="in a row"):
        _run(tmp_path, "yj", 5, spec=gamma_jet)


def test_cli(tmp_path):
    out = tmp_path / "Y300.root"
    cfg = json.dumps({"generate": {"events": 40, "batch_size": 20, "mpi": False, "seed": 3}})
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "salad",
            "generate",
            "--sample",
            "Y300",
            "--processes",
            str(REPO / "config" / "processes.yaml"),
            "--output",
            str(out),
            "--config",
            cfg,
            "--threads",
            "1",
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert uproot.open(out)["Delphes"].num_entries == 40
    assert read_summary(out)["seed"] == 3 + 62
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "salad",
            "generate",
            "--sample",
            "nope",
            "--processes",
            str(REPO / "config" / "processes.yaml"),
            "--output",
            str(out),
            "--config",
            cfg,
        ],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 1 and "unknown process" in bad.stderr
