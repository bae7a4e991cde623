"""The benchmark harness runs end to end in --quick mode and every number it reports is a
positive finite rate/time (salad.bench)."""

import math

import torch

from salad import bench


def test_quick_benchmark_rows_are_positive_finite(tmp_path, monkeypatch):
    monkeypatch.setattr(bench, "MAKE_RUN_FILE", tmp_path / "make_run.txt")
    torch_threads = torch.get_num_threads()
    try:
        rows, scale, meta = bench.run(quick=True, log=lambda *_: None)
    finally:
        torch.set_num_threads(torch_threads)
    stages = {r["stage"] for r in rows}
    assert stages == set(bench.STAGES)
    for r in rows:
        for key in ("seconds", "events_per_s"):
            assert math.isfinite(r[key]) and r[key] > 0, r
        assert r["events"] > 0, r
    variants = {(r["stage"], r["variant"]) for r in rows}
    assert ("preselect", "uproot raw read (I/O limit)") in variants
    assert any("random tensors" in v for s, v in variants if s == "encoder")
    assert scale and all(math.isfinite(s["exponent"]) for s in scale)
    text = bench.markdown(rows, scale, meta)
    assert text.count("\n| ") >= len(rows) + 1 and "not measured" in text
    (tmp_path / "make_run.txt").write_text("1234 s (2 cores)\n")
    assert "1234 s (2 cores)" in bench.markdown(rows, scale, meta)
