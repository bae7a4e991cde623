"""salad.split: disjoint halves, fractions, determinism, stability under added events."""

import json

import numpy as np
import pandas as pd
import pytest

from salad.__main__ import main
from salad.artifacts import provenance, read_parquet, read_provenance, write_parquet
from salad.errors import SaladError
from salad.split import assign, split_frame

CFG = {"seed": 1, "encoder_fraction": 0.5, "train_val_test": [0.6, 0.2, 0.2]}
IDS = 7 * 10**9 + np.arange(60000, dtype=np.int64)


def within(count, n, p, sigmas=4.0):
    return abs(count - n * p) < sigmas * np.sqrt(n * p * (1 - p))


@pytest.mark.parametrize("fraction", [0.5, 0.3])
def test_fractions_and_disjoint_halves(fraction):
    frame = split_frame(IDS, {**CFG, "encoder_fraction": fraction}, code=7)
    assert frame["event_id"].is_unique and set(frame["subset"]) == {"train", "val", "test", "data"}
    counts = frame["subset"].value_counts()
    assert within(counts["data"], len(IDS), 1 - fraction)
    n_enc = len(IDS) - counts["data"]
    for name, p in zip(("train", "val", "test"), CFG["train_val_test"]):
        assert within(counts[name], n_enc, p)


def test_deterministic_and_order_independent():
    a = assign(IDS, 1, 7, 0.5)
    np.testing.assert_array_equal(a, assign(IDS, 1, 7, 0.5))
    perm = np.random.default_rng(0).permutation(len(IDS))
    np.testing.assert_array_equal(assign(IDS[perm], 1, 7, 0.5), a[perm])
    assert (assign(IDS, 2, 7, 0.5) != a).mean() > 0.4  # another seed reshuffles
    assert (assign(IDS, 1, 8, 0.5) != a).mean() > 0.4  # so does another sample code


def test_adding_events_does_not_move_existing_ones():
    small = assign(IDS[:5000], 1, 7, 0.5)
    more = assign(np.concatenate([IDS[:5000], 8 * 10**9 + np.arange(3000)]), 1, 7, 0.5)
    np.testing.assert_array_equal(more[:5000], small)


def test_halves_are_not_correlated_with_event_number():
    data = assign(IDS, 1, 7, 0.5) == "data"
    first, second = data[: len(IDS) // 2].mean(), data[len(IDS) // 2 :].mean()
    assert abs(first - second) < 0.02
    assert abs(np.corrcoef(data, IDS % 2)[0, 1]) < 0.03  # no parity pattern


def test_bad_fractions_are_errors():
    with pytest.raises(SaladError, match="train_val_test"):
        assign(IDS, 1, 7, 0.5, (0.6, 0.2, 0.3))
    with pytest.raises(SaladError, match="encoder_fraction"):
        assign(IDS, 1, 7, 1.0)


def test_cli(tmp_path):
    pre = tmp_path / "pre.parquet"
    write_parquet(
        pd.DataFrame({"event_id": IDS[:2000], "myy": np.full(2000, 125.0)}), pre, provenance("preselect")
    )
    out = tmp_path / "split" / "s.parquet"
    argv = [
        "split",
        "--input",
        str(pre),
        "--code",
        "7",
        "--output",
        str(out),
        "--config",
        json.dumps({"split": CFG}),
    ]
    assert main(argv) == 0
    frame = read_parquet(out, {"event_id": "int", "subset": "str"})
    np.testing.assert_array_equal(frame["event_id"], IDS[:2000])
    np.testing.assert_array_equal(frame["subset"], assign(IDS[:2000], 1, 7, 0.5))
    assert read_provenance(out)["stage"] == "split"
    missing = argv.copy()
    missing[2] = str(tmp_path / "absent.parquet")
    assert main(missing) == 1
    with pytest.raises(SaladError, match=r"absent\.parquet: file not found"):
        from salad.split import cli

        cli(missing[1:])
