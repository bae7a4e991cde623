"""Benchmark harness: throughput of every compute-heavy stage on this machine.

    python -m salad.bench [--quick] [--sizes generate=500,2000 preselect=10000,40000 ...] \\
        [--output docs/benchmarks.md] [--repeat 2] [--stages generate,preselect,...]

Fixed, seeded inputs; every measurement runs with one thread (torch.set_num_threads(1),
LightGBM n_jobs=1) unless a row says otherwise. Stages and what is timed:

- generate: salad.generate.generate (Pythia 8 + FastJet + detector + uproot writer), ggH
  and yy, MPI off; the wall time includes Pythia initialisation.
- preselect: salad.preselect.preselect on a Delphes file made by tiling the generated yy
  events (renumbered) to each size, against uproot's raw chunked read of the same branches
  (salad.delphes' branch resolution, same chunk size): the I/O limit.
- encoder: salad.encoder.bench.benchmark (training steps with class-balanced sampler
  batches vs random tensors of the same shape), laptop width (32) and paper width (120),
  on the preselected generated yy + ggH events.
- flow: salad.cathode.flow.fit on a synthetic 6-d sideband sample (fixed epoch count, no
  early stopping) and template sampling (salad.cathode.flow.sample); at the largest size also
  normflows' MADE layer (before the masked layer) and zuko's MAF (the reference library) with
  the same split, batches and optimiser. `flow_comparison` (not in the default run; see
  docs/benchmarks.md) adds NLL and two-sample-AUC quality on a non-Gaussian latent toy.
- bdt: salad.cathode.classify.kfold_scores (5 folds, one BDT, laptop LightGBM settings,
  early stopping off so the tree count is fixed) on synthetic 6-d data.
- nplm: salad.nplm.run_test (Nystrom kernel logistic fit, M = sqrt(N)) on synthetic 6-d data.
- make run: read from results/benchmarks/make_run.txt if present (measured by hand).

Each timed call is repeated `--repeat` times (the minimum is reported: the machine may be
shared). Cost growth per stage: exponent b of seconds ~ events^b from the smallest and
largest size (b = 1: linear; < 1: fixed costs dominate at small sizes).
"""

from __future__ import annotations

import argparse
import datetime
import math
import os
import platform
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from .artifacts import atomic_output

ROOT = Path(__file__).resolve().parents[2]
MAKE_RUN_FILE = ROOT / "results" / "benchmarks" / "make_run.txt"
STAGES = ("generate", "preselect", "encoder", "flow", "bdt", "nplm")

FULL = {
    "generate": [500, 2000, 8000],
    "preselect": [10000, 40000, 120000],
    "encoder": [20],
    "flow": [5000, 20000],
    "sample": [20000, 80000],
    "bdt": [5000, 20000],
    "nplm": [4000, 16000],
}
QUICK = {
    "generate": [50, 100],
    "preselect": [200, 400],
    "encoder": [2],
    "flow": [300, 600],
    "sample": [500, 1000],
    "bdt": [300, 600],
    "nplm": [200, 400],
}
PRESELECT_CFG = {
    "chunk_size": 20000,
    "n_photon_candidates": 3,
    "higgs_mass": 125.0,
    "diphoton_trigger_pt": [35.0, 25.0],
    "single_photon_trigger_pt": 140.0,
    "pt_over_myy": [0.4, 0.3],
    "myy_range": [105.0, 160.0],
}
WINDOW, SIGNAL_REGION = (105.0, 160.0), (120.0, 130.0)


def timed(fn: Callable, repeat: int = 1):
    """(minimum wall seconds over `repeat` calls, result of the last call)."""
    best, out = math.inf, None
    for _ in range(max(1, repeat)):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def row(
    stage: str,
    variant: str,
    events: int,
    seconds: float,
    threads: str = "torch 1",
    note: str = "",
    rate: float | None = None,
) -> dict:
    return {
        "stage": stage,
        "variant": variant,
        "events": int(events),
        "seconds": float(seconds),
        "events_per_s": float(rate if rate is not None else events / seconds),
        "threads": threads,
        "note": note,
    }


def _torch_threads() -> str:
    import torch

    return f"torch {torch.get_num_threads()}"


# --------------------------------------------------------------------------- generate
def bench_generate(sizes: Sequence[int], workdir: Path, repeat: int = 1) -> tuple[list, dict]:
    """Rows, and {process: path of the largest generated file} (inputs of later stages)."""
    from .config import load_processes
    from .generate import DEFAULTS, generate, process_spec

    procs = load_processes(ROOT / "config" / "processes.yaml")
    rows, files = [], {}
    for name in ("ggH", "yy"):
        spec = process_spec(procs, name)
        for n in sizes:
            path = workdir / f"{name}_{n}.root"
            seconds, _ = timed(
                lambda: generate(
                    spec, n, DEFAULTS["seed"] + int(spec["code"]), DEFAULTS["batch_size"], False, path
                ),
                repeat,
            )
            rows.append(
                row("generate", f"{name}, MPI off", n, seconds, "1 (single-threaded)", "incl. Pythia init")
            )
            files[name] = path
    return rows, files


# --------------------------------------------------------------------------- preselect
def tile_delphes(src: Path, dst: Path, n_events: int) -> Path:
    """Write a Delphes file of `n_events` by repeating the events of `src` (renumbered), one
    basket per repetition, with salad.generate's writer."""
    import awkward as ak
    import uproot

    from . import generate as gen

    with uproot.open(src) as f:
        tree = f[gen.TREE]
        colls = list(dict.fromkeys(k.split("/")[0] for k in tree.keys() if "/" in k))
        base = {}
        for c in colls:
            arrays = tree.arrays(filter_name=f"{c}/{c}.*", library="ak")
            base[c] = ak.zip({name.split(".", 1)[1]: arrays[name] for name in arrays.fields}, depth_limit=2)
    n0 = len(base["Event"])
    with uproot.recreate(dst) as root, gen._fixed_size_members():
        tree, done = None, 0
        while done < n_events:
            k = min(n0, n_events - done)
            part = {c: a[:k] for c, a in base.items()}
            number = ak.unflatten(np.arange(done, done + k, dtype=np.int64), 1)
            part["Event"] = ak.with_field(part["Event"], number, "Number")
            if tree is None:
                tree = gen._mktree(root, part)
            tree.extend(part)
            done += k
    return dst


def raw_read(path: Path, chunk_size: int) -> int:
    """uproot's chunked read of exactly the branches the preselection reads."""
    from . import delphes
    from .preselect import FIELDS

    ttree = delphes.open_tree(path)
    branches = sorted({found[0] for f in FIELDS if (found := delphes._resolve(ttree, f))})
    n = 0
    for arrays in ttree.iterate(branches, step_size=chunk_size, library="ak"):
        n += len(arrays)
    return n


def bench_preselect(source: Path, sizes: Sequence[int], workdir: Path, repeat: int = 3) -> list:
    """salad.preselect vs the raw read, on `source` tiled to each size."""
    from .preselect import preselect

    rows = []
    for n in sizes:
        path = tile_delphes(source, workdir / f"tiled_{n}.root", n)
        t_raw, got = timed(lambda: raw_read(path, PRESELECT_CFG["chunk_size"]), repeat)
        assert got == n, (got, n)
        t_sel, (table, _) = timed(lambda: preselect([str(path)], "yy", 1, 0, 1.0, PRESELECT_CFG), repeat)
        mb = path.stat().st_size / 1e6
        rows.append(
            row(
                "preselect",
                "uproot raw read (I/O limit)",
                n,
                t_raw,
                "1",
                f"{mb:.1f} MB file, chunk {PRESELECT_CFG['chunk_size']}",
            )
        )
        rows.append(
            row(
                "preselect",
                "salad.preselect",
                n,
                t_sel,
                "1",
                f"{len(table)} pass; {100 * t_raw / t_sel:.0f} % of the raw read rate",
            )
        )
        path.unlink()
    return rows


# --------------------------------------------------------------------------- encoder
def preselected_events(files: Mapping[str, Path], seed: int = 0):
    """RawEvents of the preselected generated samples, with a seeded 60/40 train/val subset."""
    from .config import load_processes
    from .encoder.data import N_FEATURES, N_OBJECTS, RawEvents
    from .preselect import preselect

    procs = load_processes(ROOT / "config" / "processes.yaml")
    parts = []
    for name, path in files.items():
        table, _ = preselect(
            [str(path)], name, int(procs[name]["code"]), int(procs[name]["group"]), 1.0, PRESELECT_CFG
        )
        frame = table.to_pandas()
        objects = np.stack(frame["objects"].to_numpy()).astype(np.float32)
        parts.append(
            RawEvents(
                objects.reshape(-1, N_OBJECTS, N_FEATURES),
                frame[["dr_yy", "pt_yy"]].to_numpy(np.float32),
                frame["event_id"].to_numpy(np.int64),
                frame["group"].to_numpy(np.int64),
            )
        )
    cat = lambda k: np.concatenate([getattr(p, k) for p in parts])  # noqa: E731
    rng = np.random.default_rng(seed)
    subset = np.where(rng.random(sum(len(p) for p in parts)) < 0.6, "train", "val")
    return RawEvents(cat("objects"), cat("event"), cat("event_id"), cat("group"), subset)


ENCODER_WIDTHS = {
    "laptop": {"width": 32, "heads": 4, "hl_width": 32, "head_width": 64},
    "paper": {"width": 120, "heads": 8, "hl_width": 64, "head_width": 128},
}
QUICK_WIDTHS = {
    "laptop": {"width": 8, "heads": 2, "hl_width": 8, "head_width": 8},
    "paper": {"width": 16, "heads": 2, "hl_width": 8, "head_width": 8},
}


def bench_encoder(
    events,
    steps: int,
    batch_size: int = 512,
    widths: Mapping[str, Mapping] = ENCODER_WIDTHS,
    device: str | None = None,
) -> list:
    from .encoder.bench import benchmark
    from .encoder.models import count_parameters
    from .encoder.setups import resolve_setup
    from .encoder.train import Trainer, prepare_data

    rows = []
    groups = {f"g{g}": int(g) for g in np.unique(events.group)}
    for name, width in widths.items():
        enc = {
            "defaults": {**width, "batch_size": batch_size, "max_events_per_sample": None},
            "setups": {"bench": {}},
        }
        cfg = resolve_setup(enc, "bench", groups)
        train, val, norm, grp, _ = prepare_data(cfg, events, 1)
        trainer = Trainer(cfg, train, val, norm, grp, 1, os.devnull, device=device)
        res = benchmark(trainer, steps)
        npar = count_parameters(trainer.model)
        note = f"{npar / 1e6:.2f}M params, batch {res['batch_size']}, {steps} steps, {trainer.device}"
        for kind, key in (
            ("sampler batches", "sampler_events_per_s"),
            ("random tensors", "random_events_per_s"),
        ):
            rate = res[key]
            rows.append(
                row(
                    "encoder",
                    f"width {width['width']} ({name}), {kind}",
                    res["batch_size"] * steps,
                    res["batch_size"] * steps / rate,
                    _torch_threads(),
                    note,
                    rate,
                )
            )
    return rows


# --------------------------------------------------------------------------- CATHODE
def synthetic_latent(n: int, d: int = 6, seed: int = 0):
    """(z (n, d), m_yy (n,)): a correlated Gaussian latent whose mean drifts with the mass
    (falling spectrum over the preselection window)."""
    rng = np.random.default_rng(seed)
    myy = WINDOW[0] + rng.exponential(25.0, 4 * n)
    myy = myy[myy < WINDOW[1]][:n]
    while len(myy) < n:
        myy = np.concatenate([myy, rng.uniform(*WINDOW, n - len(myy))])
    a = rng.normal(size=(d, d)) / math.sqrt(d)
    z = rng.normal(size=(n, d)) @ a + 0.02 * (myy[:, None] - 125.0)
    return z, myy


def latent_toy(myy: np.ndarray, seed: int = 0, d: int = 6) -> np.ndarray:
    """A latent-like 6-d background z | m_yy (n, 6) with the features that make a density fit
    hard: a mass-dependent mean, a banana (curved) correlation, a bimodal dimension whose mode
    weights follow the mass, a skewed (log-normal) one with a mass interaction, a bounded one
    and a heavy-tailed (Student t, 5 dof) one; then mixed by a fixed random rotation."""
    if d != 6:
        raise ValueError("latent_toy is 6-d")
    rng = np.random.default_rng(seed)
    t = (np.asarray(myy, np.float64) - 132.5) / 27.5  # -1 .. 1 over the window
    n = len(t)
    u = rng.normal(size=(n, 6))
    x = np.empty((n, 6))
    x[:, 0] = u[:, 0] + 0.8 * t
    x[:, 1] = 0.6 * u[:, 1] + 0.5 * (x[:, 0] ** 2 - 1)
    x[:, 2] = np.where(rng.uniform(size=n) < 0.5 + 0.2 * t, -1.2, 1.2) + 0.5 * u[:, 2]
    x[:, 3] = np.exp(0.5 * u[:, 3]) - 1.13 + 0.3 * t * x[:, 0]
    x[:, 4] = 2 * np.tanh(1.5 * u[:, 4]) + 0.2 * u[:, 5]
    x[:, 5] = u[:, 5] / np.sqrt(rng.chisquare(5, n) / 5) * (1 + 0.2 * t)
    q, _ = np.linalg.qr(np.random.default_rng(12345).normal(size=(6, 6)))
    return x @ q


def toy_masses(n: int, lo: float, hi: float, seed: int = 0) -> np.ndarray:
    """n masses [GeV] of the falling continuum (exponential, slope 1/25 GeV) inside [lo, hi)."""
    u = np.random.default_rng(seed).uniform(size=n)
    a, b = np.exp(-(lo - WINDOW[0]) / 25.0), np.exp(-(hi - WINDOW[0]) / 25.0)
    return WINDOW[0] - 25.0 * np.log(a - u * (a - b))


def fit_zuko(
    z: np.ndarray, myy: np.ndarray, cfg: Mapping, seed: int = 1, hidden: Sequence[int] = (64, 64)
) -> dict:
    """The reference: zuko's MAF (cfg transforms, `hidden` MLP, context = scaled mass) trained
    with salad.cathode.flow.fit's recipe (same split and standardisation, batches, Adam,
    clipping, cfg max_epochs and patience; the returned model is the last epoch's). {seconds,
    epochs, val_nll (last epoch), best_val_nll, best_epoch, history (val NLL per epoch), model,
    mean, std}. zuko samples x at a context c with model(c).sample()."""
    import torch
    import zuko

    from .cathode import flow as flowmod

    cfg = flowmod.settings(cfg)
    torch.set_num_threads(1)
    z = np.asarray(z, np.float64)
    tr, va, mean, std = flowmod.split_and_scale(z, myy, cfg["val_fraction"], seed)
    zs = torch.as_tensor(((z - mean) / std).astype(np.float32))
    ctx = torch.as_tensor(flowmod.scale_mass(myy, WINDOW))
    torch.manual_seed(seed)
    model = zuko.flows.MAF(z.shape[1], 1, transforms=int(cfg["transforms"]), hidden_features=tuple(hidden))
    opt = torch.optim.Adam(model.parameters(), lr=cfg["learning_rate"])
    gen = torch.Generator().manual_seed(seed)
    tr_t, va_t = torch.as_tensor(tr), torch.as_tensor(va)
    vals, bs = [], int(cfg["batch_size"])
    best, best_epoch, wait = np.inf, -1, 0
    start = time.perf_counter()
    for _ in range(int(cfg["max_epochs"])):
        order = tr_t[torch.randperm(len(tr_t), generator=gen)]
        for i in range(0, len(order), bs):
            idx = order[i : i + bs]
            loss = -model(ctx[idx]).log_prob(zs[idx]).mean()
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
            opt.step()
        with torch.no_grad():
            vals.append(-model(ctx[va_t]).log_prob(zs[va_t]).mean().item())
        if vals[-1] < best - 1e-4:  # salad.cathode.flow.fit's early stopping
            best, best_epoch, wait = vals[-1], len(vals) - 1, 0
        else:
            wait += 1
            if wait >= cfg["patience"]:
                break
    return {
        "seconds": time.perf_counter() - start,
        "epochs": len(vals),
        "val_nll": vals[-1],
        "best_val_nll": best,
        "best_epoch": best_epoch,
        "history": vals,
        "model": model,
        "mean": mean,
        "std": std,
    }


def two_sample_auc(a: np.ndarray, b: np.ndarray, seed: int = 0) -> float:
    """ROC AUC of a LightGBM classifier (200 trees, 1 thread) separating rows of `a` from rows
    of `b`, 2-fold cross-fitted (0.5: indistinguishable)."""
    import lightgbm as lgb
    from sklearn.metrics import roc_auc_score

    x = np.concatenate([a, b])
    y = np.r_[np.zeros(len(a)), np.ones(len(b))]
    fold = np.random.default_rng(seed).permutation(len(x)) % 2
    score = np.empty(len(x))
    for k in (0, 1):
        clf = lgb.LGBMClassifier(
            n_estimators=200, learning_rate=0.05, num_leaves=31, n_jobs=1, verbose=-1, random_state=seed
        )
        clf.fit(x[fold != k], y[fold != k])
        score[fold == k] = clf.predict_proba(x[fold == k])[:, 1]
    return float(roc_auc_score(y, score))


def toy_sets(n_sb: int, n_sr: int):
    """latent_toy samples: (z_sb, m_sb) sidebands (half below, half above the SR), (z_sr, m_sr)
    signal region and z_sr_twin, an independent draw at the same SR masses."""
    m_sb = np.concatenate(
        [
            toy_masses(n_sb // 2, WINDOW[0], SIGNAL_REGION[0], 1),
            toy_masses(n_sb - n_sb // 2, SIGNAL_REGION[1], WINDOW[1], 2),
        ]
    )
    m_sr = toy_masses(n_sr, *SIGNAL_REGION, seed=4)
    return latent_toy(m_sb, seed=3), m_sb, latent_toy(m_sr, seed=5), m_sr, latent_toy(m_sr, seed=6)


def flow_convergence(
    n_sb: int = 20000, cfg: Mapping | None = None, log: Callable = lambda line: None
) -> list[dict]:
    """Fits to convergence (early stopping, laptop recipe by default: batch 1024, lr 3e-3,
    max 80 epochs, patience 6) of salad's flow (density orientation) and zuko's MAF on the
    latent_toy sidebands: total seconds, epochs, seconds per epoch, best val NLL."""
    from .cathode import flow as flowmod

    cfg = {**FLOW_COMPARE_CFG, "max_epochs": 80, "patience": 6, **(cfg or {})}
    z_sb, m_sb = toy_sets(n_sb, 1)[:2]
    out = []
    res = flowmod.fit(z_sb, m_sb, WINDOW, cfg, seed=1, threads=1, device="cpu")
    out.append(
        {
            "variant": "salad flow, density orientation",
            "seconds": res["fit_seconds"],
            "epochs": len(res["history"]),
            "best_epoch": res["best_epoch"],
            "best_val_nll": min(h["val_nll"] for h in res["history"]),
        }
    )
    log(str(out[-1]))
    for hidden in ((64, 64), (64,) * 5):
        ref = fit_zuko(z_sb, m_sb, cfg, seed=1, hidden=hidden)
        out.append(
            {
                "variant": f"zuko MAF, hidden {hidden}",
                "seconds": ref["seconds"],
                "epochs": ref["epochs"],
                "best_epoch": ref["best_epoch"],
                "best_val_nll": ref["best_val_nll"],
            }
        )
        log(str(out[-1]))
    for r in out:
        r["s_per_epoch"] = r["seconds"] / r["epochs"]
    return out


NORMFLOWS_MADE = {"layer": "normflows", "autoregressive": "density"}  # the flow before the masked layer
FLOW_COMPARE_CFG = {
    "transforms": 4,
    "hidden": 64,
    "blocks": 2,
    "batch_size": 1024,
    "learning_rate": 3e-3,
    "val_fraction": 0.2,
}


def flow_comparison(
    n_sb: int = 20000,
    n_sr: int = 20000,
    epochs: int = 20,
    repeat: int = 3,
    legacy_repeat: int = 1,
    cfg: Mapping | None = None,
    auc: bool = True,
    log: Callable = lambda line: None,
) -> list[dict]:
    """salad's flow in both orientations vs zuko's MAF on latent_toy: fit on n_sb sideband events
    for a fixed `epochs` (no early stopping), `repeat` times (seconds per epoch: min and max);
    val NLL (standardised units, last and best epoch); and, with `auc`, the two-sample AUC of
    flow samples vs n_sr held-out signal-region events at the same masses (the interpolation a
    CATHODE template relies on), next to the AUC of two independent true samples (the floor).
    The normflows MADE (before) is timed `legacy_repeat` times."""
    import normflows  # noqa: F401  (imported before any timing)
    import torch
    import zuko  # noqa: F401

    from .cathode import flow as flowmod

    cfg = {**FLOW_COMPARE_CFG, **(cfg or {}), "max_epochs": epochs, "patience": epochs + 1}
    z_sb, m_sb, z_sr, m_sr, z_sr_twin = toy_sets(n_sb, n_sr)
    variants = [
        ("salad flow, masked layer (new)", {"layer": "masked"}, None),
        ("salad flow, normflows MADE, density (before)", NORMFLOWS_MADE, None),
        ("zuko MAF, hidden (64, 64)", None, (64, 64)),
    ]
    secs, cpu, fits = {v[0]: [] for v in variants}, {v[0]: [] for v in variants}, {}
    for rep in range(max(1, repeat)):  # round robin: a load change hits every variant
        for name, orientation, hidden in variants:
            if orientation == NORMFLOWS_MADE and rep >= legacy_repeat:
                continue
            cpu0 = time.process_time()  # CPU seconds: robust on a shared machine
            if orientation:
                res = flowmod.fit(z_sb, m_sb, WINDOW, {**cfg, **orientation}, seed=1, threads=1, device="cpu")
                secs[name].append(res["fit_seconds"] / epochs)
            else:
                res = fit_zuko(z_sb, m_sb, cfg, seed=1, hidden=hidden)
                secs[name].append(res["seconds"] / epochs)
            cpu[name].append((time.process_time() - cpu0) / epochs)
            fits[name] = res
            log(f"{name}: {secs[name][-1]:.4f} s/epoch wall, {cpu[name][-1]:.4f} s/epoch CPU")
    out = []
    for name, orientation, _hidden in variants:
        res = fits[name]
        r = {
            "variant": name,
            "s_per_epoch_min": min(secs[name]),
            "s_per_epoch_max": max(secs[name]),
            "cpu_s_per_epoch_min": min(cpu[name]),
            "cpu_s_per_epoch_max": max(cpu[name]),
            "repeats": len(secs[name]),
            "epochs": epochs,
        }
        if orientation:
            vals = [h["val_nll"] for h in res["history"]]
            r.update(val_nll=vals[-1], best_val_nll=min(vals))
        else:
            r.update(val_nll=res["val_nll"], best_val_nll=res["best_val_nll"])
        if auc:
            start = time.perf_counter()
            if orientation:
                model = flowmod.build_flow(res["arch"])
                model.load_state_dict(res["state_dict"])
                samples = flowmod.sample(model.eval(), res, m_sr, seed=7, device="cpu")
            else:
                with torch.no_grad():
                    torch.manual_seed(7)
                    ctx = torch.as_tensor(flowmod.scale_mass(m_sr, WINDOW))
                    samples = res["model"](ctx).sample().double().numpy() * res["std"] + res["mean"]
            r["sample_s"] = time.perf_counter() - start
            r["auc"] = two_sample_auc(samples, z_sr)
        out.append(r)
        log(str(r))
    if auc:
        out.append({"variant": "truth vs independent truth (floor)", "auc": two_sample_auc(z_sr_twin, z_sr)})
    return out


def _last_val(ckpt: Mapping) -> float:
    return ckpt["history"][-1]["val_nll"]


def bench_flow(
    sizes: Sequence[int], sample_sizes: Sequence[int], epochs: int = 5, device: str | None = None
) -> list:
    from .cathode import flow as flowmod

    rows, ckpt = [], None
    cfg = {"max_epochs": epochs, "patience": epochs + 1}
    for n in sizes:
        z, myy = synthetic_latent(n, seed=n)
        sb = (myy < SIGNAL_REGION[0]) | (myy >= SIGNAL_REGION[1])
        seconds, ckpt = timed(
            lambda: flowmod.fit(z[sb], myy[sb], WINDOW, cfg, seed=1, threads=1, device=device)
        )
        rows.append(
            row(
                "flow",
                f"fit, {epochs} epochs",
                ckpt["n_train"] * epochs,
                seconds,
                _torch_threads(),
                f"{int(sb.sum())} SB events; "
                f"{seconds / epochs:.2f} s/epoch; val NLL {_last_val(ckpt):.3f}; "
                "events = train x epochs",
            )
        )
    # The same fit of the largest size: normflows' MADE layer (before) and zuko's MAF.
    seconds, old = timed(
        lambda: flowmod.fit(
            z[sb], myy[sb], WINDOW, {**cfg, **NORMFLOWS_MADE}, seed=1, threads=1, device="cpu"
        )
    )
    rows.append(
        row(
            "flow",
            f"fit, normflows MADE (before), {epochs} epochs",
            old["n_train"] * epochs,
            seconds,
            _torch_threads(),
            "normflows MaskedAffineAutoregressive, density side; "
            f"{seconds / epochs:.2f} s/epoch; val NLL {_last_val(old):.3f}; cpu",
        )
    )
    seconds, ref = timed(lambda: fit_zuko(z[sb], myy[sb], cfg, seed=1))
    rows.append(
        row(
            "flow",
            f"zuko MAF (64, 64) reference, {epochs} epochs",
            old["n_train"] * epochs,
            seconds,
            _torch_threads(),
            f"same split/batches/optimiser; {seconds / epochs:.2f} s/epoch; "
            f"val NLL {ref['val_nll']:.3f}; cpu",
        )
    )
    model = flowmod.build_flow(ckpt["arch"])
    model.load_state_dict(ckpt["state_dict"])
    model.eval()
    rng = np.random.default_rng(0)
    for n in sample_sizes:
        masses = rng.uniform(*SIGNAL_REGION, n)
        seconds, _ = timed(lambda: flowmod.sample(model, ckpt, masses, seed=2, device=device), 2)
        rows.append(row("flow", "template sampling", n, seconds, _torch_threads()))
    return rows


def bench_bdt(sizes: Sequence[int], repeat: int = 1) -> list:
    from .cathode.classify import kfold_scores

    rows = []
    cfg = {"folds": 5, "early_stopping_rounds": 0}
    for n in sizes:
        rng = np.random.default_rng(n)
        x_neg = rng.normal(size=(n, 6))
        x_pos = rng.normal(size=(n, 6)) + np.r_[0.3, 0, 0, 0, 0, 0]
        seconds, _ = timed(
            lambda: kfold_scores(x_pos, x_neg, np.ones(n), cfg, seeds=[1], fold_seed=0, threads=1), repeat
        )
        rows.append(
            row(
                "bdt",
                "5-fold CWoLa, 1 BDT, 300 trees",
                2 * n,
                seconds,
                "lightgbm 1",
                "events = SR data + template",
            )
        )
    return rows


def bench_nplm(sizes: Sequence[int], repeat: int = 1, device: str | None = None) -> list:
    from . import nplm

    rows = []
    cfg = {"n_centers": None, "lambda": 1e-6, "max_iter": 100, "tol": 1e-12, "loss": "nplm"}
    for n in sizes:
        rng = np.random.default_rng(n)
        x_ref = rng.normal(size=(n, 6))
        x_data = rng.normal(size=(n // 2, 6))
        w_ref = np.full(n, 0.5)
        sigma = nplm.kernel_width(x_ref, 90.0, seed=0)
        seconds, res = timed(
            lambda: nplm.run_test(x_ref, w_ref, x_data, sigma, cfg, seed=1, device=device), repeat
        )
        rows.append(
            row(
                "nplm",
                "one fit (ref + data)",
                n + n // 2,
                seconds,
                _torch_threads(),
                f"M = {res.n_centers} centres, {res.iterations} Newton steps",
            )
        )
    return rows


# --------------------------------------------------------------------------- report
def scaling(rows: Sequence[dict]) -> list[dict]:
    """Per (stage, variant) with >= 2 sizes: time ratio and exponent b (seconds ~ events^b)."""
    out = []
    keys = list(dict.fromkeys((r["stage"], r["variant"]) for r in rows))
    for key in keys:
        rs = sorted((r for r in rows if (r["stage"], r["variant"]) == key), key=lambda r: r["events"])
        if len(rs) < 2 or rs[0]["events"] == rs[-1]["events"]:
            continue
        a, b = rs[0], rs[-1]
        ratio = b["seconds"] / a["seconds"]
        out.append(
            {
                "stage": key[0],
                "variant": key[1],
                "events": f"{a['events']} -> {b['events']}",
                "events_ratio": b["events"] / a["events"],
                "time_ratio": ratio,
                "exponent": math.log(ratio) / math.log(b["events"] / a["events"]),
            }
        )
    return out


def make_run_row() -> str:
    if MAKE_RUN_FILE.exists():
        text = MAKE_RUN_FILE.read_text().strip()
        return text.splitlines()[0] if text else "not measured"
    return "not measured"


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        import torch

        gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    except Exception:
        gpu = "no GPU"
    return f"{os.cpu_count()} cores ({cpu}), {gpu}"


def _fmt(x: float) -> str:
    if x >= 100:
        return f"{x:,.0f}"
    if x >= 1:
        return f"{x:.2f}"
    return f"{x:.3g}"


def markdown(rows: Sequence[dict], scale: Sequence[dict], meta: Mapping) -> str:
    lines = [
        f"Measured {meta['date']} on {meta['machine']}; load average at start "
        f"{meta['load']}; mode `{meta['mode']}`, repeats {meta['repeat']} (minimum kept); "
        f"torch {meta['torch']}, lightgbm {meta['lightgbm']}.",
        "",
        "| stage | variant | events | seconds | events/s | threads | note |",
        "|---|---|---:|---:|---:|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['stage']} | {r['variant']} | {r['events']} | {_fmt(r['seconds'])} | "
            f"{_fmt(r['events_per_s'])} | {r['threads']} | {r['note']} |"
        )
    lines.append(
        f"| make run | end-to-end, config/config.yaml | | {make_run_row()} | | "
        "`--cores all` | from results/benchmarks/make_run.txt |"
    )
    if scale:
        lines += [
            "",
            "Cost growth (seconds ~ events^b, smallest to largest size):",
            "",
            "| stage | variant | events | events ratio | time ratio | b |",
            "|---|---|---|---:|---:|---:|",
        ]
        for s in scale:
            lines.append(
                f"| {s['stage']} | {s['variant']} | {s['events']} | "
                f"{s['events_ratio']:.1f} | {s['time_ratio']:.2f} | {s['exponent']:.2f} |"
            )
    return "\n".join(lines) + "\n"


def _parse_sizes(items: Sequence[str] | None, base: Mapping) -> dict:
    sizes = {k: list(v) for k, v in base.items()}
    for item in items or []:
        key, _, values = item.partition("=")
        if key not in sizes or not values:
            raise SystemExit(f"--sizes: expected STAGE=N,N,... with STAGE in {', '.join(sizes)}")
        sizes[key] = [int(v) for v in values.split(",")]
    return sizes


def run(
    quick: bool = False,
    sizes: Mapping | None = None,
    stages: Sequence[str] = STAGES,
    repeat: int | None = None,
    device: str | None = None,
    log: Callable = lambda line: print(line, flush=True),
) -> tuple[list, list, dict]:
    """Run the benchmarks; returns (rows, scaling, meta)."""
    import lightgbm
    import torch

    torch.set_num_threads(1)
    sizes = {**(QUICK if quick else FULL), **(sizes or {})}
    repeat = repeat or (1 if quick else 2)
    meta = {
        "date": datetime.date.today().isoformat(),
        "machine": machine(),
        "load": " ".join(f"{x:.1f}" for x in os.getloadavg()),
        "mode": "quick" if quick else "full",
        "repeat": repeat,
        "torch": torch.__version__,
        "lightgbm": lightgbm.__version__,
    }
    rows: list[dict] = []

    def done(new):
        for r in new:
            log(
                f"{r['stage']:9s} {r['variant']:45s} {r['events']:>8d} events "
                f"{r['seconds']:9.3f} s {r['events_per_s']:12.1f} ev/s  {r['note']}"
            )
        rows.extend(new)

    with tempfile.TemporaryDirectory(prefix="salad-bench-") as tmp:
        work = Path(tmp)
        files = {}
        if {"generate", "preselect", "encoder"} & set(stages):
            gen_sizes = sizes["generate"] if "generate" in stages else sizes["generate"][-1:]
            new, files = bench_generate(gen_sizes, work, 1)
            if "generate" in stages:
                done(new)
        if "preselect" in stages:
            done(bench_preselect(files["yy"], sizes["preselect"], work, 1 if quick else 3))
        if "encoder" in stages:
            events = preselected_events(files)
            done(
                bench_encoder(
                    events,
                    sizes["encoder"][0],
                    16 if quick else 512,
                    QUICK_WIDTHS if quick else ENCODER_WIDTHS,
                    device,
                )
            )
        if "flow" in stages:
            done(bench_flow(sizes["flow"], sizes["sample"], 1 if quick else 5, device))
        if "bdt" in stages:
            done(bench_bdt(sizes["bdt"], repeat))
        if "nplm" in stages:
            done(bench_nplm(sizes["nplm"], repeat, device))
    return rows, scaling(rows), meta


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m salad.bench", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny sizes (seconds; for the tests)")
    p.add_argument("--sizes", nargs="*", help="STAGE=N,N,... (stages: " + ", ".join(FULL) + ")")
    p.add_argument(
        "--stages", default=",".join(STAGES), help="comma-separated subset of " + ", ".join(STAGES)
    )
    p.add_argument("--repeat", type=int, help="timed repeats, minimum kept (default 2; quick 1)")
    p.add_argument("--device", help="torch device for encoder/flow/NPLM (default: cuda if available)")
    p.add_argument("--output", help="also write the Markdown table to this file")
    args = p.parse_args(argv)
    stages = [s for s in args.stages.split(",") if s]
    unknown = sorted(set(stages) - set(STAGES))
    if unknown:
        raise SystemExit(f"--stages: unknown {unknown}; known: {', '.join(STAGES)}")
    rows, scale, meta = run(
        args.quick, _parse_sizes(args.sizes, QUICK if args.quick else FULL), stages, args.repeat, args.device
    )
    text = markdown(rows, scale, meta)
    print("\n" + text)
    if args.output:
        with atomic_output(args.output) as tmp:
            tmp.write_text(text)


if __name__ == "__main__":
    main()
