"""Stage `embed`: latent means of every preselected event under one trained encoder.

    python -m salad embed --model results/encoders/{setup}/{seed}/model.pt \\
        --preselected P1.parquet ... --output results/embeddings/{setup}/{seed}.parquet \\
        --threads 2 --config '{"embed": {"batch_size": 4096}}'

Output contract: `event_id` int64, `z0..z{d-1}` float32 (latent means, eval mode), one row
per event of every given preselected file (both split halves).
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch

from ..artifacts import provenance, write_parquet
from ..config import parse_stage_config
from .data import load_events, to_tensors
from .train import load_checkpoint, pick_device


@torch.no_grad()
def latent_means(model, tensors, batch_size: int, device) -> np.ndarray:
    """Latent means (N, d) float32, in batches, eval mode."""
    model.eval()
    out = []
    for start in range(0, len(tensors), batch_size):
        b = tensors.batch(torch.arange(start, min(start + batch_size, len(tensors)))).to(device)
        out.append(model.encode(b.obj, b.evt, b.mask)[0].float().cpu().numpy())
    d = model.output[-1].out_features // (2 if model.variational else 1)
    return np.concatenate(out) if out else np.zeros((0, d), np.float32)


def embed(model_path: str | Path, preselected: Sequence[str | Path], output: str | Path,
          batch_size: int = 4096, device: str | None = None) -> pd.DataFrame:
    """Embed every event of `preselected` with the checkpoint; write and return the frame."""
    dev = pick_device(device)
    model, norm, ckpt = load_checkpoint(model_path, dev)
    events = load_events(preselected)
    z = latent_means(model, to_tensors(events, norm), batch_size, dev)
    frame = pd.DataFrame({"event_id": events.event_id.astype(np.int64)})
    for i in range(z.shape[1]):
        frame[f"z{i}"] = z[:, i].astype(np.float32)
    cfg = {"encoder": ckpt["config"], "seed": ckpt["seed"], "batch_size": batch_size}
    write_parquet(frame, output, provenance("embed", cfg, model=str(model_path)))
    return frame


def cli(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="salad embed", description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True)
    p.add_argument("--preselected", nargs="+", required=True)
    p.add_argument("--output", required=True)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device")
    p.add_argument("--config", help='JSON {"embed": {"batch_size": N}}')
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    batch = int(parse_stage_config(args.config).get("embed", {}).get("batch_size", 4096))
    embed(args.model, args.preselected, args.output, batch, args.device)
