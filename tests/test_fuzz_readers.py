"""Issue 7, fuzzing the readers: malformed Delphes ROOT files (NaN/inf, negative pT, empty
collections, missing branches) through salad.preselect, and malformed Parquet files (random
column types, NaN, empty tables, duplicate names, bad metadata, garbage bytes) through
salad.artifacts and the stage loaders. Every outcome is a valid result or a SaladError; a valid
preselection result holds only finite numbers.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from delphes_fixtures import COLLECTIONS, events_from_dicts, write_delphes
from salad import inspect as salad_inspect
from salad.artifacts import PROVENANCE_KEY, list_column_to_array, read_parquet, read_provenance
from salad.contracts import read_embeddings
from salad.encoder.data import read_preselected
from salad.errors import SaladError
from salad.preselect import FIELDS, FLOAT_COLUMNS, OPTIONAL_COLLECTIONS, preselect
from salad.pseudodata import load_sample

FUZZ = settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
CFG = dict(
    chunk_size=4,
    n_photon_candidates=3,
    higgs_mass=125.0,
    diphoton_trigger_pt=[35.0, 25.0],
    single_photon_trigger_pt=140.0,
    pt_over_myy=[0.4, 0.3],
    myy_range=[105.0, 160.0],
)

# ---------------------------------------------------------------------------- ROOT / preselect
NASTY = [math.nan, math.inf, -math.inf, -50.0, 0.0, 1e30, -1e-30]
_plain = st.floats(-5.0, 300.0, width=32)
value = st.one_of(_plain, st.sampled_from(NASTY))
# a photon pair that passes the preselection on its own (m = 109.5 GeV), so that fuzzed
# jets/leptons/MET reach the object tensor of a selected event
GOOD_PAIR = [dict(PT=60.0, Eta=0.0, Phi=0.0, E=60.0), dict(PT=50.0, Eta=0.0, Phi=math.pi, E=50.0)]


def objects(fields, max_size, numbers):
    entry = {f: numbers for f in fields if f not in ("BTag", "Charge")}
    entry.update({f: st.integers(-2, 3) for f in fields if f in ("BTag", "Charge")})
    return st.lists(st.fixed_dictionaries(entry), max_size=max_size)


def event(clean: bool):
    """(has a passing photon pair, collections, Event.Weight); clean: plain values only, else
    each collection is plain or malformed (NaN, inf, negative, huge) field by field."""
    colls = {
        c: objects(f, 5 if c != "MissingET" else 2, _plain)
        if clean
        else st.one_of(objects(f, 5, _plain), objects(f, 5, value))
        for c, f in COLLECTIONS.items()
    }
    weights = [1.0] if clean else [1.0] * 4 + [0.5, 0.0, -1.0, math.nan]
    return st.tuples(st.booleans(), st.fixed_dictionaries(colls), st.sampled_from(weights))


files = st.one_of(st.lists(event(clean=True), max_size=6), st.lists(event(clean=False), max_size=6))


def _build(evs):
    out = []
    for good, colls, weight in evs:
        ev = dict(colls)
        if good:
            ev["Photon"] = GOOD_PAIR + list(ev["Photon"])
        ev["Weight"] = weight
        out.append(ev)
    return out


LEAVES = (
    [f"{c}/{c}.{f}" for c, fields in COLLECTIONS.items() for f in fields]
    + ["Event/Event.Number", "Event/Event.Weight"]
    + [f"{c}_size" for c in COLLECTIONS]
)


def check_preselect(path):
    """Run the preselection on `path`: a SaladError naming the file, or a finite table."""
    try:
        table, cutflow = preselect([str(path)], "ggH", 2, 1, 10.0, CFG)
    except SaladError as exc:
        assert str(path) in str(exc)
        return None
    frame = table.to_pandas()
    assert len(frame) == cutflow["cuts"][-1]["events"] > 0
    for col in (*FLOAT_COLUMNS, "weight"):
        assert np.isfinite(frame[col].to_numpy()).all(), col
    assert np.isfinite(np.concatenate(frame["objects"].to_numpy())).all()
    return frame


@FUZZ
@given(evs=files)
def test_preselect_survives_malformed_values(tmp_path_factory, evs):
    path = write_delphes(
        tmp_path_factory.mktemp("fz") / "f.root", events_from_dicts(_build(evs)), basket_size=3
    )
    check_preselect(path)


@FUZZ
@given(
    evs=st.lists(event(clean=True), min_size=1, max_size=4),
    drop=st.sets(st.sampled_from(LEAVES), min_size=1, max_size=4),
)
def test_preselect_missing_branches_are_named(tmp_path_factory, evs, drop):
    path = write_delphes(tmp_path_factory.mktemp("fz") / "f.root", events_from_dicts(_build(evs)), drop=drop)
    try:
        preselect([str(path)], "ggH", 2, 1, 10.0, CFG)
    except SaladError as exc:
        assert str(path) in str(exc)
    else:  # only leaves the preselection does not read may be dropped without error, or
        # every read leaf of an optional collection (read as zero objects, salad.delphes)
        unread = {
            "Jet.Tau1",
            "Jet.Tau5",
            "FatJet.Tau1",
            "FatJet.Tau5",
            "Electron.Charge",
            "Muon.Charge",
            "MissingET.Eta",
        }
        leaves = {leaf.split("/")[-1] for leaf in drop}
        absent = {c for c in OPTIONAL_COLLECTIONS if {f for f in FIELDS if f.startswith(c + ".")} <= leaves}
        assert all(
            leaf in unread or leaf.split(".")[0] in absent or leaf.endswith("_size") for leaf in leaves
        ), drop


def test_preselect_rejects_nan_jet_in_a_selected_event(tmp_path):
    """The fuzz property on one hand-made case: a NaN jet eta in a passing event is named, not
    written. (A NaN pT marks an absent object: it is zero-padded like any missing slot.)"""
    jets = [dict(PT=40.0, Eta=math.nan, Phi=0.2, Mass=5.0)]
    path = write_delphes(tmp_path / "nan.root", events_from_dicts([{"Photon": GOOD_PAIR, "Jet": jets}]))
    with pytest.raises(SaladError, match=r"nan\.root: NaN/inf in Jet eta of 1 passing event"):
        preselect([str(path)], "ggH", 2, 1, 10.0, CFG)
    ok = write_delphes(tmp_path / "ok.root", events_from_dicts([{"Photon": GOOD_PAIR}]))
    assert len(check_preselect(ok)) == 1


# ---------------------------------------------------------------------------- Parquet
NAMES = [
    "event_id",
    "sample",
    "group",
    "weight",
    "myy",
    "subset",
    "objects",
    "dr_yy",
    "pt_yy",
    "z0",
    "z1",
    "is_signal",
]
KINDS = ["int", "float", "str", "bool", "list"]


@st.composite
def arrow_column(draw, n):
    kind = draw(
        st.sampled_from(
            ["int", "float", "str", "bool", "list", "null", "dict", "struct", "ts", "nested", "ragged"]
        )
    )
    if kind == "int":
        return pa.array(
            draw(st.lists(st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1)), min_size=n, max_size=n)),
            pa.int64(),
        )
    if kind == "float":
        return pa.array(
            draw(st.lists(st.one_of(st.none(), st.floats(width=32)), min_size=n, max_size=n)),
            draw(st.sampled_from([pa.float32(), pa.float64()])),
        )
    if kind == "str":
        return pa.array(draw(st.lists(st.one_of(st.none(), st.text(max_size=4)), min_size=n, max_size=n)))
    if kind == "bool":
        return pa.array(
            draw(st.lists(st.one_of(st.none(), st.booleans()), min_size=n, max_size=n)), pa.bool_()
        )
    if kind == "list":
        size = draw(st.sampled_from([0, 3, 132]))
        return pa.array(
            [
                None if draw(st.booleans()) and i == 0 else [draw(st.floats(width=32))] * size
                for i in range(n)
            ],
            pa.list_(pa.float32()),
        )
    if kind == "ragged":
        return pa.array([[1.0] * i for i in range(n)], pa.list_(pa.float32()))
    if kind == "nested":
        return pa.array([[[1.0, 2.0]]] * n, pa.list_(pa.list_(pa.float64())))
    if kind == "null":
        return pa.nulls(n)
    if kind == "dict":
        return pa.array(["a", "b"] * (n // 2) + ["a"] * (n % 2)).dictionary_encode()
    if kind == "struct":
        return pa.array([{"x": 1.0, "y": "s"}] * n)
    return pa.array([0] * n, pa.timestamp("ns"))


@st.composite
def arrow_table(draw):
    n = draw(st.integers(0, 4))
    names = draw(st.lists(st.sampled_from(NAMES), max_size=6))  # duplicates allowed on purpose
    table = pa.table([draw(arrow_column(n)) for _ in names], names=names) if names else pa.table({})
    meta = draw(st.sampled_from([None, b'{"stage": "x"}', b"{not json", b"[1, 2]", b"\xff\xfe"]))
    return table.replace_schema_metadata({PROVENANCE_KEY: meta} if meta is not None else None)


def write_random(path, table):
    pq.write_table(table, path)
    return path


def expect_ok_or_salad(fn, *args):
    try:
        return fn(*args)
    except SaladError:
        return None


@FUZZ
@given(
    table=arrow_table(), contract=st.dictionaries(st.sampled_from(NAMES), st.sampled_from(KINDS), max_size=4)
)
def test_read_parquet_and_provenance_on_random_tables(tmp_path_factory, table, contract):
    path = write_random(tmp_path_factory.mktemp("pq") / "t.parquet", table)
    frame = expect_ok_or_salad(read_parquet, path, contract)
    if frame is not None:
        assert list(frame.columns) == list(contract) if contract else len(frame) == table.num_rows
        for name, kind in contract.items():
            if kind == "float":
                assert np.isfinite(frame[name].to_numpy()).all()
    prov = expect_ok_or_salad(read_provenance, path)
    assert prov is None or isinstance(prov, dict)
    text = expect_ok_or_salad(salad_inspect.describe, str(path))
    assert text is None or str(path) in text
    if frame is not None and contract.get("objects") == "list":
        expect_ok_or_salad(list_column_to_array, path, frame["objects"], (11, 12))


@FUZZ
@given(table=arrow_table(), split=arrow_table())
def test_stage_loaders_on_random_tables(tmp_path_factory, table, split):
    root = tmp_path_factory.mktemp("pq")
    pre = write_random(root / "pre.parquet", table)
    spl = write_random(root / "spl.parquet", split)
    for loader, args in ((read_preselected, (pre,)), (read_embeddings, (pre,)), (load_sample, (pre, spl))):
        expect_ok_or_salad(loader, *args)


@FUZZ
@given(
    data=st.one_of(
        st.binary(max_size=300),
        st.binary(max_size=200).map(lambda b: b"PAR1" + b + b"PAR1"),
        st.integers(0, 2000).map(lambda k: k),
    )
)
def test_garbage_bytes_are_a_named_error(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("pq") / "g.parquet"
    if isinstance(data, int):  # a valid file cut short
        buf = pa.BufferOutputStream()
        pq.write_table(pa.table({"event_id": np.arange(200), "myy": np.ones(200)}), buf)
        full = buf.getvalue().to_pybytes()
        data = full[: data % len(full)]
    path.write_bytes(data)
    for fn, args in (
        (read_parquet, (path, {"event_id": "int"})),
        (read_provenance, (path,)),
        (salad_inspect.describe, (str(path),)),
    ):
        with pytest.raises(SaladError, match="g.parquet"):
            fn(*args)


def test_empty_table_with_the_contract_columns_reads_as_empty(tmp_path):
    path = tmp_path / "e.parquet"
    pq.write_table(
        pa.table(
            {
                "event_id": pa.array([], pa.int64()),
                "myy": pa.array([], pa.float32()),
                "objects": pa.array([], pa.list_(pa.float32())),
            }
        ),
        path,
    )
    frame = read_parquet(path, {"event_id": "int", "myy": "float", "objects": "list"})
    assert len(frame) == 0
    assert list_column_to_array(path, frame["objects"], (11, 12)).shape == (0, 11, 12)
    assert json.loads(json.dumps(read_provenance(path))) == {}
