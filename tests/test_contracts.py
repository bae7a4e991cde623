"""salad.contracts: the doc's column tables are generated from the code, and the one
preselected ⋈ split join and the embeddings reader enforce their contracts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conftest import REPO
from salad import contracts
from salad.artifacts import provenance, write_parquet
from salad.errors import SaladError

DOC = REPO / "docs" / "data-contracts.md"


def test_doc_tables_are_generated_from_the_contracts():
    text = DOC.read_text()
    assert contracts.render_doc(text) == text, (
        "docs/data-contracts.md is stale: run python -m salad contracts --write docs/data-contracts.md"
    )
    blocks = {
        line.split("contracts:")[1].split(" ")[0]
        for line in text.splitlines()
        if line.startswith("<!-- contracts:")
    }
    assert blocks == set(contracts.ARTIFACTS)


def test_render_doc_replaces_a_stale_table_and_rejects_unknown_names():
    block = contracts.BLOCK.format(name="split")
    stale = f"intro\n{block}\n| old |\n{contracts.BLOCK_END}\nend"
    assert contracts.render_doc(stale) == (
        f"intro\n{block}\n{contracts.markdown_table('split')}\n{contracts.BLOCK_END}\nend"
    )
    with pytest.raises(SaladError, match="unknown artifact 'nope'"):
        contracts.render_doc(contracts.BLOCK.format(name="nope") + contracts.BLOCK_END)


def test_schema_kinds_and_layout():
    assert contracts.SPLIT.kinds() == {"event_id": "int", "subset": "str"}
    assert contracts.PRESELECTED.kinds("objects", "group") == {"objects": "list", "group": "int"}
    with pytest.raises(KeyError):
        contracts.PRESELECTED.kinds("nope")
    assert (contracts.N_OBJECTS, contracts.N_FEATURES) == (11, 12)
    assert contracts.FEATURES[contracts.ONEHOT][0] == "is_jet"
    assert all(contracts.FEATURES[i] == f"is_{k}" for k, i in contracts.ONEHOT_COLUMN.items())
    assert list(contracts.sample_code([3 * 10**9 + 7, 10**9 - 1])) == [3, 0]
    sr, sb = contracts.region_masks([110.0, 120.0, 130.0, 160.0, 170.0], (120.0, 130.0), (105.0, 160.0))
    assert list(sr) == [False, True, False, False, False]  # [lo, hi)
    assert list(sb) == [True, False, True, True, False]  # rest of the window


def _write(tmp_path, ids, subsets, split_ids=None):
    pre, spl = tmp_path / "pre.parquet", tmp_path / "spl.parquet"
    n = len(ids)
    write_parquet(
        pd.DataFrame(
            {
                "event_id": np.asarray(ids, np.int64),
                "sample": "a",
                "group": np.zeros(n, np.int8),
                "weight": np.ones(n),
                "myy": np.full(n, 125.0, np.float32),
            }
        ),
        pre,
        provenance("t"),
    )
    write_parquet(
        pd.DataFrame(
            {"event_id": np.asarray(ids if split_ids is None else split_ids, np.int64), "subset": subsets}
        ),
        spl,
        provenance("t"),
    )
    return pre, spl


def test_the_one_join(tmp_path):
    pre, spl = _write(tmp_path, [5, 3, 9], ["data", "train", "eval"])
    got = contracts.read_events([pre], [spl], contracts.PRESELECTED_COLUMNS)
    assert list(got["event_id"]) == [5, 3, 9] and list(got["subset"]) == ["data", "train", "eval"]
    pre, spl = _write(tmp_path, [5, 3, 9], ["data", "train"], split_ids=[5, 3])
    with pytest.raises(SaladError, match=r"spl\.parquet: 1 event\(s\) of .*pre\.parquet have no subset"):
        contracts.read_events([pre], [spl], {})
    pre, spl = _write(tmp_path, [5, 3, 9], ["data", "train", "val"], split_ids=[5, 3, 8])
    with pytest.raises(SaladError, match=r"spl\.parquet: event ids do not match"):
        contracts.read_events([pre], [spl], {})
    pre, spl = _write(tmp_path, [5, 3, 9], ["data", "train", "nope"])
    with pytest.raises(SaladError, match=r"unknown subset value\(s\) \['nope'\]"):
        contracts.read_events([pre], [spl], {})
    pre, spl = _write(tmp_path, [5, 5, 9], ["data", "train", "val"])
    with pytest.raises(SaladError, match="duplicate event_id"):
        contracts.read_events([pre], [spl], {})


def test_embeddings_reader(tmp_path):
    path = tmp_path / "e.parquet"
    frame = pd.DataFrame(
        {
            "event_id": np.array([4, 2], np.int64),
            "z1": [1.0, 2.0],
            "z0": [3.0, 4.0],
            "mu0": [5.0, 6.0],
            "mu1": [7.0, 8.0],
        }
    ).astype({"z0": np.float32})
    write_parquet(frame, path, provenance("t"))
    assert list(contracts.read_embeddings(path).columns) == ["event_id", "z0", "z1"]
    ids, mu = contracts.read_latent(path, means=True)
    assert list(ids) == [4, 2] and mu.tolist() == [[5.0, 7.0], [6.0, 8.0]]
    assert contracts.latent_for(path, np.array([2, 4])).tolist() == [[4.0, 2.0], [3.0, 1.0]]
    with pytest.raises(SaladError, match="1 requested event id"):
        contracts.latent_for(path, np.array([2, 7]))
    with pytest.raises(SaladError, match=r"expected latent columns z0\.\.z\{d-1\}, found \[0, 2\]"):
        contracts.latent_columns(["event_id", "z0", "z2"], "x")
