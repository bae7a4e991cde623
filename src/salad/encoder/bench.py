"""Training throughput: real batches (class-balanced sampler + gather from the precomputed
normalised tensors) against random tensors of the same shape (no data pipeline).

    python -m salad.encoder.bench --preselected P... --split S... --config '{"encoder": {...}}' \\
        --threads 1 --steps 30 [--interactions both]

`--interactions both` times the particle transformer with and without the ParT interaction
features (one JSON line each); the default times the configured setup.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from ..cli import derive_seed
from .data import EventTensors, load_events
from .train import Trainer, prepare_data, stage_setup


def _time_steps(trainer: Trainer, next_batch, steps: int) -> float:
    g = torch.Generator(trainer.device).manual_seed(0)
    trainer.model.train()
    n = 0
    for i in range(steps + 3):
        if i == 3:  # warm-up steps excluded
            start, n = time.perf_counter(), 0
        b = next_batch(i)
        terms = trainer._step_terms(b, g)
        trainer.opt.zero_grad(set_to_none=True)
        terms["loss"].backward()
        trainer.opt.step()
        n += len(b)
    if trainer.device.type == "cuda":
        torch.cuda.synchronize()
    return n / (time.perf_counter() - start)


def benchmark(trainer: Trainer, steps: int = 30) -> dict:
    """Events/s of training steps with sampler batches and with fixed random tensors."""
    batches = [idx for e in range(steps // trainer.sampler.n_batches + 2) for idx in trainer.sampler.epoch(e)]
    real = _time_steps(
        trainer, lambda i: trainer.train.batch(torch.from_numpy(batches[i]).to(trainer.device)), steps
    )
    b = trainer.train.batch(torch.from_numpy(batches[0]).to(trainer.device))
    gen = torch.Generator().manual_seed(derive_seed("bench"))
    rand = EventTensors(
        torch.randn(b.obj.shape, generator=gen).to(b.obj.device),
        torch.randn(b.evt.shape, generator=gen).to(b.obj.device),
        b.mask,
        b.label,
    )
    rand.obj[..., 7:] = b.obj[..., 7:]  # same types and padding: identical attention masks
    random = _time_steps(trainer, lambda i: rand, steps)
    return {
        "sampler_events_per_s": real,
        "random_events_per_s": random,
        "ratio": real / random,
        "batch_size": len(b),
        "steps": steps,
    }


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--preselected", nargs="+", required=True)
    p.add_argument("--split", nargs="+", required=True)
    p.add_argument("--config", required=True)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--device")
    p.add_argument(
        "--interactions",
        choices=("config", "both"),
        default="config",
        help="both: time with and without the ParT interaction features",
    )
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    cfg = stage_setup(args.config)
    train, val, norm, groups, _ = prepare_data(
        cfg, load_events(args.preselected, args.split, cfg["train_samples"]), 1
    )
    variants = (
        [cfg] if args.interactions == "config" else [dict(cfg, interactions=flag) for flag in (True, False)]
    )
    for setup in variants:
        trainer = Trainer(setup, train, val, norm, groups, 1, "/dev/null", device=args.device)
        print(
            json.dumps(
                {
                    "threads": args.threads,
                    "device": str(trainer.device),
                    "interactions": setup.get("interactions"),
                    **benchmark(trainer, args.steps),
                }
            )
        )


if __name__ == "__main__":
    main()
