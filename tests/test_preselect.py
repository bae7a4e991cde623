"""salad.preselect / salad.delphes on small synthetic Delphes files (tests/delphes_fixtures.py)."""

import itertools
import json
import math

import awkward as ak
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from delphes_fixtures import events_from_dicts, random_events, write_delphes
from salad.__main__ import main
from salad.artifacts import list_column_to_array, read_parquet, read_provenance
from salad.errors import SaladError
from salad.preselect import FEATURES, N_FEATURES, N_OBJECTS, preselect, select

CFG = dict(
    chunk_size=20000,
    n_photon_candidates=3,
    higgs_mass=125.0,
    diphoton_trigger_pt=[35.0, 25.0],
    single_photon_trigger_pt=140.0,
    pt_over_myy=[0.4, 0.3],
    myy_range=[105.0, 160.0],
)
CODE, GROUP, XSEC = 2, 1, 50.0


def photon(pt, eta=0.0, phi=0.0):
    return dict(PT=pt, Eta=eta, Phi=phi, E=pt * math.cosh(eta))


def pair_mass(a, b):
    """Massless two-photon mass, independent of the module's four-vector code."""
    angular = math.cosh(a["Eta"] - b["Eta"]) - math.cos(a["Phi"] - b["Phi"])
    return math.sqrt(max(2 * a["PT"] * b["PT"] * angular, 0))


def reference(photons, cfg=CFG):
    """Per-event reference preselection in plain Python: (passes, myy or None)."""
    ph = sorted(photons, key=lambda p: -p["PT"])[: cfg["n_photon_candidates"]]
    if len(ph) < 2:
        return False, None
    a, b = min(itertools.combinations(ph, 2), key=lambda ab: abs(pair_mass(*ab) - cfg["higgs_mass"]))
    m = pair_mass(a, b)
    lead, sub = (a, b) if a["PT"] >= b["PT"] else (b, a)
    trig = (lead["PT"] > 35 and sub["PT"] > 25) or ph[0]["PT"] > 140
    ok = trig and lead["PT"] / m > 0.4 and sub["PT"] / m > 0.3 and 105 < m < 160
    return ok, m


def run(tmp_path, events, name="s.root", cfg=CFG, **kw):
    path = write_delphes(tmp_path / name, events, **kw)
    table, cutflow = preselect([str(path)], "ggH", CODE, GROUP, XSEC, cfg)
    return table.to_pandas(), cutflow


# three photons A, B, C: m_AB = 118.3, m_AC = 126.5, m_BC = 74.8 -> the pair AC is closest to 125;
# a fourth photon D would give m_AD = 125.0 but it is not among the 3 leading photons.
A, B, C = photon(100.0, 0.0, 0.0), photon(70.0, 0.0, math.pi / 2), photon(40.0, 0.0, math.pi)
D = photon(30.0, math.acosh(125.0**2 / (2 * 100 * 30) - 1), math.pi)


def test_candidate_pair_is_closest_to_higgs_mass_among_three_leading(tmp_path):
    assert abs(pair_mass(A, D) - 125.0) < 1e-9
    events = events_from_dicts([{"Photon": [D, B, A, C]}])  # deliberately not pT ordered
    masks, cand = select(events_to_data(events), CFG)
    assert cand["myy"][0] == pytest.approx(pair_mass(A, C), rel=1e-6)
    assert (cand["pt_y1"][0], cand["pt_y2"][0]) == (pytest.approx(100.0), pytest.approx(40.0))
    assert masks["myy_window"][0]
    # with 4 candidates the AD pair wins, and then fails pT/myy > 0.3 for its subleading photon
    masks4, cand4 = select(events_to_data(events), {**CFG, "n_photon_candidates": 4})
    assert cand4["myy"][0] == pytest.approx(125.0, rel=1e-6)
    assert masks4["pt_over_myy_lead"][0] and not masks4["pt_over_myy_sublead"][0]
    # with 2 candidates (the schema's minimum) only the leading pair AB exists, and it passes
    masks2, cand2 = select(events_to_data(events), {**CFG, "n_photon_candidates": 2})
    assert cand2["myy"][0] == pytest.approx(pair_mass(A, B), rel=1e-6) and masks2["myy_window"][0]


def events_to_data(events):
    """The dict of "Coll.Field" arrays salad.delphes yields, built straight from fixture arrays."""
    data = {"Event.Number": events["Number"], "Event.Weight": events["Weight"]}
    for coll in ("Photon", "Jet", "FatJet", "Electron", "Muon", "MissingET"):
        for field in events[coll].fields:
            data[f"{coll}.{field}"] = events[coll][field]
    return data


def test_output_matches_reference_and_every_row_passes_each_cut(tmp_path):
    events = random_events(1500, seed=3)
    df, cutflow = run(tmp_path, events)
    photons = [
        [dict(zip(("PT", "Eta", "Phi"), map(float, v))) for v in zip(p.PT, p.Eta, p.Phi)]
        for p in events["Photon"]
    ]
    ref = {i: reference(ph) for i, ph in enumerate(photons)}
    expected = sorted(i for i, (ok, _) in ref.items() if ok)
    assert 100 < len(expected) < 1400
    number = (df["event_id"] - CODE * 10**9).to_numpy()
    assert sorted(number) == expected
    np.testing.assert_allclose(df["myy"], [ref[i][1] for i in number], rtol=2e-4)
    assert ((df["myy"] > 105) & (df["myy"] < 160)).all()
    assert (df["pt_y1"] / df["myy"] > 0.4).all() and (df["pt_y2"] / df["myy"] > 0.3).all()
    assert (df["pt_y1"] >= df["pt_y2"]).all()
    assert ((df["pt_y1"] > 35) & (df["pt_y2"] > 25)).all()
    dphi = np.angle(np.exp(1j * (df["phi_y1"] - df["phi_y2"])))
    np.testing.assert_allclose(df["dr_yy"], np.hypot(df["eta_y1"] - df["eta_y2"], dphi), rtol=1e-4)
    px = df["pt_y1"] * np.cos(df["phi_y1"]) + df["pt_y2"] * np.cos(df["phi_y2"])
    py = df["pt_y1"] * np.sin(df["phi_y1"]) + df["pt_y2"] * np.sin(df["phi_y2"])
    np.testing.assert_allclose(df["pt_yy"], np.hypot(px, py), rtol=1e-4, atol=1e-3)
    counts = [c["events"] for c in cutflow["cuts"]]
    assert counts[0] == 1500 and counts[-1] == len(df) and counts == sorted(counts, reverse=True)
    assert (df["group"] == GROUP).all() and (df["sample"] == "ggH").all()


def test_object_tensor_layout_on_hand_built_event(tmp_path):
    jets = [
        dict(PT=pt, Eta=0.1 * k, Phi=0.2, Mass=5.0 + k, BTag=k % 2, Tau1=0.8, Tau2=0.4, Tau3=0.3, Tau4=0.15)
        for k, pt in enumerate([50.0, 200.0, 30.0, 120.0, 90.0])
    ]  # not pT ordered; 5 > 4 slots
    fat = [dict(PT=300.0, Eta=-1.0, Phi=1.0, Mass=80.0, BTag=0, Tau1=0.6, Tau2=0.3, Tau3=0.0, Tau4=0.0)]
    ele = [dict(PT=45.0, Eta=0.5, Phi=-1.0, Charge=-1)]
    met = [dict(MET=70.0, Eta=2.0, Phi=-2.5)]
    event = {"Photon": [A, C], "Jet": jets, "FatJet": fat, "Electron": ele, "MissingET": met}
    df, _ = run(tmp_path, events_from_dicts([event]))
    obj = list_column_to_array("t", df["objects"], (N_OBJECTS, N_FEATURES))[0]
    col = {name: k for k, name in enumerate(FEATURES)}
    onehot = obj[:, col["is_jet"] :]
    expected_types = [0, 0, 0, 0, 1, None, 2, None, None, None, 4]
    for row, t in enumerate(expected_types):
        if t is None:
            assert not obj[row].any(), f"padding row {row} not all zero"
        else:
            assert onehot[row].sum() == 1 and onehot[row, t] == 1
    np.testing.assert_allclose(obj[:4, col["pt"]], [200.0, 120.0, 90.0, 50.0])
    np.testing.assert_allclose(obj[:4, col["mass"]], [6.0, 8.0, 9.0, 5.0])  # follow their jets
    np.testing.assert_array_equal(obj[:4, col["btag"]], [1, 1, 0, 0])
    np.testing.assert_allclose(obj[:4, col["tau32"]], 0.75)
    np.testing.assert_allclose(obj[:4, col["tau43"]], 0.5)
    np.testing.assert_allclose(obj[4, :4], [300.0, -1.0, 1.0, 80.0])
    assert obj[4, col["tau32"]] == 0.0 and obj[4, col["tau43"]] == 0.0  # τ3 = 0 -> τ43 := 0
    np.testing.assert_allclose(obj[6, :7], [45.0, 0.5, -1.0, 0, 0, 0, 0])
    np.testing.assert_allclose(obj[10, :7], [70.0, 0.0, -2.5, 0, 0, 0, 0])
    assert not np.isin(obj[:, col["pt"]], [A["PT"], C["PT"]]).any()  # photons never in objects


def test_weights_sum_to_expected_yield(tmp_path):
    events = random_events(2000, seed=5, weights="random")
    df, cutflow = run(tmp_path, events)
    w = events["Weight"].astype(np.float64)
    passed = (df["event_id"] - CODE * 10**9).to_numpy()
    assert df["weight"].sum() == pytest.approx(XSEC * w[passed].sum() / w.sum(), rel=1e-9)
    np.testing.assert_allclose(df["weight"], XSEC * w[passed] / w.sum(), rtol=1e-9)
    assert cutflow["cuts"][-1]["expected_per_ifb"] == pytest.approx(df["weight"].sum())
    assert cutflow["cuts"][0]["expected_per_ifb"] == pytest.approx(XSEC)


def test_chunked_equals_unchunked_and_event_layouts_agree(tmp_path):
    events = random_events(2500, seed=7, weights="random")
    path = write_delphes(tmp_path / "big.root", events, basket_size=300)
    one, _ = preselect([str(path)], "ggH", CODE, GROUP, XSEC, {**CFG, "chunk_size": 10**6})
    many, cutflow = preselect([str(path)], "ggH", CODE, GROUP, XSEC, {**CFG, "chunk_size": 170})
    assert one.num_rows > 200 and one.equals(many)
    flat = write_delphes(tmp_path / "flat.root", events, flat_event=True)
    assert preselect([str(flat)], "ggH", CODE, GROUP, XSEC, CFG)[0].equals(one)


def test_several_files_get_unique_running_event_numbers(tmp_path):
    a = write_delphes(tmp_path / "a.root", random_events(600, seed=1))
    b = write_delphes(tmp_path / "b.root", random_events(600, seed=2))  # Event.Number restarts at 0
    both, cutflow = preselect([str(a), str(b)], "ggH", CODE, GROUP, XSEC, {**CFG, "chunk_size": 250})
    single = [preselect([str(p)], "ggH", CODE, GROUP, XSEC, CFG)[0].num_rows for p in (a, b)]
    ids = both.column("event_id").to_numpy()
    assert len(np.unique(ids)) == len(ids) == sum(single)
    assert cutflow["n_events"] == 1200 and ids.max() < CODE * 10**9 + 1200


def test_cli_writes_contract_provenance_and_cutflow(tmp_path):
    path = write_delphes(tmp_path / "x.root", random_events(800, seed=2))
    procs = tmp_path / "processes.yaml"
    procs.write_text("processes:\n  ggH: {code: 2, group: 1, xsec_fb: 12.5}\n")
    out, flow = tmp_path / "out" / "ggH.parquet", tmp_path / "out" / "ggH.cutflow.json"
    argv = [
        "preselect",
        "--input",
        str(path),
        "--sample",
        "ggH",
        "--processes",
        str(procs),
        "--output",
        str(out),
        "--cutflow",
        str(flow),
        "--config",
        json.dumps({"preselect": CFG}),
    ]
    assert main(argv) == 0
    df = read_parquet(
        out,
        {
            "event_id": "int",
            "sample": "str",
            "group": "int",
            "weight": "float",
            "myy": "float",
            "dr_yy": "float",
            "pt_yy": "float",
            "objects": "list",
        },
    )
    schema = pq.read_schema(out)
    objects = schema.field("objects").type
    assert pa.types.is_list(objects) and objects.value_type == pa.float32()
    assert schema.field("group").type == "int8" and schema.field("myy").type == "float"
    assert read_provenance(out)["stage"] == "preselect"
    cutflow = json.loads(flow.read_text())
    assert cutflow["cuts"][-1]["events"] == len(df)
    assert cutflow["cuts"][-1]["expected_per_ifb"] == pytest.approx(df["weight"].sum())
    assert df["weight"].sum() < 12.5


def test_fixture_reads_with_coffea_delphes_schema(tmp_path):
    from coffea.nanoevents import DelphesSchema, NanoEventsFactory

    path = write_delphes(tmp_path / "c.root", random_events(50, seed=1))
    events = NanoEventsFactory.from_root(
        {str(path): "Delphes"}, schemaclass=DelphesSchema, mode="eager"
    ).events()
    assert len(events) == 50 and "Tau3" in events.FatJet.fields
    np.testing.assert_array_equal(ak.to_numpy(ak.flatten(events.Event.Number, axis=None)), np.arange(50))


# ---- bad input: every case is a SaladError naming the file (and branch) ----


def _fails(paths, match, cfg=CFG):
    with pytest.raises(SaladError, match=match):
        preselect([str(p) for p in paths], "ggH", CODE, GROUP, XSEC, cfg)


def test_missing_file(tmp_path):
    _fails([tmp_path / "nope.root"], r"nope\.root: file not found")


def test_corrupt_and_truncated_files(tmp_path):
    junk = tmp_path / "junk.root"
    junk.write_bytes(b"definitely not ROOT" * 100)
    _fails([junk], r"junk\.root: not a readable ROOT file")
    good = write_delphes(tmp_path / "good.root", random_events(3000, seed=1), basket_size=500)
    data = good.read_bytes()
    for frac in (0.5, 0.95):
        cut = tmp_path / f"cut{frac}.root"
        cut.write_bytes(data[: int(len(data) * frac)])
        _fails([cut], rf"cut{frac}\.root: ")


def test_missing_tree_and_branch(tmp_path):
    events = random_events(100, seed=1)
    _fails([write_delphes(tmp_path / "t.root", events, tree="Events")], r"t\.root: no tree 'Delphes'")
    _fails(
        [write_delphes(tmp_path / "b.root", events, drop=["Photon/Photon.E"])],
        r"b\.root: .*no branch Photon/Photon\.E",
    )
    _fails(
        [write_delphes(tmp_path / "j.root", events, drop=[f"FatJet/FatJet.Tau{k}" for k in range(1, 6)])],
        r"j\.root: .*no branch FatJet/FatJet\.Tau",
    )


def test_no_event_passes(tmp_path):
    events = events_from_dicts([{"Photon": [photon(20.0), photon(10.0, 1.0, 2.0)]}] * 7)
    _fails([write_delphes(tmp_path / "none.root", events)], r"none\.root: 0 of 7 events passed")


def test_missing_cross_section_is_reported(tmp_path):
    path = write_delphes(tmp_path / "x.root", random_events(50, seed=1))
    procs = tmp_path / "p.yaml"
    procs.write_text("processes:\n  ggH: {code: 2, group: 1}\n")
    argv = [
        "preselect",
        "--input",
        str(path),
        "--sample",
        "ggH",
        "--processes",
        str(procs),
        "--output",
        str(tmp_path / "o.parquet"),
        "--cutflow",
        str(tmp_path / "o.json"),
        "--config",
        json.dumps({"preselect": CFG}),
    ]
    assert main(argv) == 1 and not (tmp_path / "o.parquet").exists()
    assert main(argv + ["--xsec-fb", "3.0"]) == 0
    assert read_parquet(tmp_path / "o.parquet", {"weight": "float"})["weight"].sum() < 3.0


def test_real_delphes_tau_array_layout_reads_the_same(tmp_path):
    events = random_events(900, seed=4)
    split = preselect(
        [str(write_delphes(tmp_path / "s.root", events))],
        "ggH",
        CODE,
        GROUP,
        XSEC,
        {**CFG, "chunk_size": 200},
    )[0]
    array_path = write_delphes(tmp_path / "a.root", events, tau_array=True, basket_size=250)
    import uproot

    assert "FatJet/FatJet.Tau[5]" in uproot.open(array_path)["Delphes"].keys()
    array = preselect([str(array_path)], "ggH", CODE, GROUP, XSEC, {**CFG, "chunk_size": 200})[0]
    assert array.equals(split)


def test_null_xsec_uses_the_generator_cross_section(tmp_path):
    summary = json.dumps({"sigma_gen_pb": 0.02, "process": "ggH"})
    path = write_delphes(
        tmp_path / "g.root", random_events(400, seed=1), metadata={"salad_generation": summary}
    )
    procs = tmp_path / "p.yaml"
    procs.write_text("processes:\n  ggH: {code: 2, group: 1, xsec_fb: null, k_factor: 1.5}\n")
    out, flow = tmp_path / "o.parquet", tmp_path / "o.json"
    argv = [
        "preselect",
        "--input",
        str(path),
        "--sample",
        "ggH",
        "--processes",
        str(procs),
        "--output",
        str(out),
        "--cutflow",
        str(flow),
        "--config",
        json.dumps({"preselect": CFG}),
    ]
    assert main(argv) == 0
    cutflow = json.loads(flow.read_text())
    assert cutflow["xsec_fb"] == pytest.approx(0.02 * 1e3 * 1.5)
    assert cutflow["cuts"][0]["expected_per_ifb"] == pytest.approx(30.0)


def _leading_awkward(data, coll, fields, n, pt="PT"):
    """The pre-issue-17 awkward implementation of salad.preselect._leading (the reference)."""
    order = ak.argsort(data[f"{coll}.{pt}"], axis=1, ascending=False)
    out = {}
    for field in fields:
        arr = ak.pad_none(data[f"{coll}.{field}"][order][:, :n], n, axis=1, clip=True)
        out[field] = ak.to_numpy(ak.fill_none(ak.values_astype(arr, np.float64), np.nan))
    return out, ~np.isnan(out[pt])


def test_descending_within_events_by_hand():
    from salad.preselect import _descending_within_events as desc

    starts = np.array([0, 2, 2])  # events of 2, 0 and 2 objects
    assert desc(np.array([3.0, 2.0, 5.0, 1.0]), starts)  # rises only across the boundary
    assert desc(np.array([3.0, 3.0, 5.0, 5.0]), starts)  # ties are in order
    assert not desc(np.array([3.0, 4.0, 5.0, 1.0]), starts)
    assert not desc(np.array([3.0, 2.0, 1.0, 5.0]), starts)  # the last pair
    assert not desc(np.array([3.0, np.nan, 5.0, 1.0]), starts)  # NaN: sort (reference order)
    assert desc(np.array([]), np.array([0, 0]))


def test_leading_on_pt_sorted_collections_equals_the_awkward_reference():
    """Delphes stores pT-sorted collections: _leading then skips its sort (fast path); ties
    must still come out in input order, as the stable argsort of the reference gives."""
    from salad.preselect import _descending_within_events, _jagged, _leading

    data = events_to_data(random_events(300, seed=12))
    data["Jet.PT"] = np.round(data["Jet.PT"] / 5) * 5
    for coll in ("Photon", "Jet"):
        order = ak.argsort(data[f"{coll}.PT"], axis=1, ascending=False, stable=True)
        for key in [k for k in data if k.startswith(coll + ".")]:
            data[key] = data[key][order]
        counts, flat = _jagged(data[f"{coll}.PT"])
        assert _descending_within_events(flat, np.cumsum(counts) - counts)
    for coll, fields, n in (("Photon", ("PT", "Eta", "Phi", "E"), 3), ("Jet", ("PT", "Eta", "BTag"), 4)):
        got, got_mask = _leading(data, coll, fields, n)
        ref, ref_mask = _leading_awkward(data, coll, fields, n)
        np.testing.assert_array_equal(got_mask, ref_mask)
        for f in fields:
            np.testing.assert_array_equal(got[f], ref[f], err_msg=f"{coll}.{f}")
        rows = np.arange(300) % 2 == 0
        sub, _ = _leading(data, coll, fields, n, rows=rows)
        np.testing.assert_array_equal(sub["PT"], ref["PT"][rows])


def test_vectorised_leading_and_object_tensor_equal_the_awkward_reference():
    from salad.preselect import _leading, object_tensor

    events = random_events(400, seed=11)
    data = events_to_data(events)
    # pT ties (rounded to 5 GeV) must keep the input order, as a stable descending argsort does
    data["Jet.PT"] = np.round(data["Jet.PT"] / 5) * 5
    # a sliced (ListArray, not ListOffsetArray) input takes the generic path
    data["Muon.PT"] = data["Muon.PT"][::-1][::-1]
    for coll, fields, n, pt in (
        ("Photon", ("PT", "Eta", "Phi", "E"), 3, "PT"),
        ("Jet", ("PT", "Eta", "BTag", "Tau3"), 4, "PT"),
        ("Muon", ("PT", "Phi"), 2, "PT"),
        ("FatJet", ("PT", "Mass"), 2, "PT"),
        ("MissingET", ("MET", "Phi"), 1, "MET"),
    ):
        got, got_mask = _leading(data, coll, fields, n, pt=pt)
        ref, ref_mask = _leading_awkward(data, coll, fields, n, pt=pt)
        np.testing.assert_array_equal(got_mask, ref_mask)
        for f in fields:
            np.testing.assert_array_equal(got[f], ref[f], err_msg=f"{coll}.{f}")
    rows = np.arange(400) % 3 == 1
    subset = {k: v[rows] for k, v in data.items()}
    with np.errstate(all="ignore"):
        np.testing.assert_array_equal(object_tensor(data, rows), object_tensor(subset))
        assert object_tensor(data).shape == (400, N_OBJECTS, N_FEATURES)
