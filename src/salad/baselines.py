"""Baseline representations (paper B sec. V-D), written in the embeddings contract.

`results/embeddings/baseline_{name}/{seed}.parquet`: `event_id` int64, `z0..z{d-1}` float32,
one row per preselected event of every configured sample, so baselines flow through the same
downstream steps (CATHODE, NPLM, linear evaluation) as encoder latents. Names:

- `source`: the raw source representation, the flattened 11x12 object tensor (132 values) plus
  (dR_yy, pT_yy) [GeV], i.e. exactly the encoder's inputs; 134 dimensions.
- `leading`: a leading-object set of `baselines.leading_dim` values (default 6, the size of the
  ID latent), the first entries of LEADING_ORDER: pT of MET, leading jet, leading electron,
  leading muon, leading large-R jet, second jet, ... [GeV]. Paper B's 6D set was MET, 2 muons,
  2 electrons, 1 jet for a lepton-triggered sample; in diphoton events jets and large-R jets
  carry most of the SM/BSM differences, so one of each lepton flavour is kept and the second
  leptons are replaced by jets.
- `ref22`: nine signature-level observables (REF22_FEATURES) standing in for the nine raw
  features of paper A's Ref. [22] (its exact list is not in paper A): MET, H_T, N_jets, N_b-jets,
  N_leptons, pT of the two leading jets, leading-lepton pT, m_jj. They cover the handles of the
  table I signals: leptons (C1N2, X->S(ll)H), b-jets (stops, sbottoms, ttH), forward jet pairs
  (VBF), MET (SUSY).
- `vae`: a small VAE (paper B's baseline [39]: 32-16 hidden units, BatchNorm + LeakyReLU, latent
  of `vae.latent_dim`, loss (1-beta)*MSE + beta*KL) trained on background events of the encoder-half
  train split of the `source` features; the embedding is (mean, log-variance) as in paper B
  (2*latent_dim values) or the mean only (`vae.output: mean`).

Every baseline is standardised with the mean/std of background (group >= 0) events of the
encoder-half `train` split. Photon four-momenta and m_yy never enter (as for encoders).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from .artifacts import provenance, write_parquet
from .cli import setup_logging, stage_parser
from .config import parse_stage_config
from .contracts import LATENT_PREFIX, read_objects
from .errors import SaladError
from .features import Standardiser, leading_features, ref22_features, source_features

log = logging.getLogger("salad.baselines")

NAMES = ("source", "leading", "ref22", "vae")


def standardize(x: np.ndarray, fit_mask: np.ndarray) -> np.ndarray:
    """(x - mean) / std with mean, std of the rows `fit_mask`; constant columns get std 1."""
    if not fit_mask.any():
        raise SaladError("baselines: no background events in the encoder-half train split")
    return Standardiser.fit(x[fit_mask]).transform(x)


# ---------------------------------------------------------------- VAE
class VAE(torch.nn.Module):
    """Paper B's baseline VAE: in -> 32 -> 16 -> (mu, logvar)[latent] -> 16 -> 32 -> in."""

    def __init__(self, n_in: int, latent_dim: int = 3, hidden: Sequence[int] = (32, 16)):
        super().__init__()

        def block(a, b):
            return [torch.nn.Linear(a, b), torch.nn.BatchNorm1d(b), torch.nn.LeakyReLU(0.1)]

        widths = [n_in, *hidden]
        self.encoder = torch.nn.Sequential(*[m for a, b in zip(widths, widths[1:]) for m in block(a, b)])
        self.head = torch.nn.Linear(widths[-1], 2 * latent_dim)
        back = [latent_dim, *reversed(hidden)]
        self.decoder = torch.nn.Sequential(
            *[m for a, b in zip(back, back[1:]) for m in block(a, b)], torch.nn.Linear(back[-1], n_in)
        )
        self.latent_dim = latent_dim

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.head(self.encoder(x)).chunk(2, dim=1)
        return mu, logvar.clamp(-20.0, 10.0)

    def forward(self, x: torch.Tensor):
        mu, logvar = self.encode(x)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        return self.decoder(z), mu, logvar


def vae_loss(model: VAE, x: torch.Tensor, beta: float) -> torch.Tensor:
    """(1-beta) * MSE (mean over features) + beta * KL (sum over latent), averaged over the batch."""
    recon, mu, logvar = model(x)
    mse = ((recon - x) ** 2).mean(dim=1)
    kl = -0.5 * (1 + logvar - mu**2 - logvar.exp()).sum(dim=1)
    return ((1 - beta) * mse + beta * kl).mean()


def train_vae(x_train: np.ndarray, x_val: np.ndarray, cfg: Mapping, seed: int) -> tuple[VAE, list[dict]]:
    """Train a VAE on standardised features (n, n_in); keep the best-validation state.

    cfg: latent_dim, epochs, batch_size, lr, beta. Returns (model in eval mode, history rows).
    """
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = VAE(x_train.shape[1], int(cfg["latent_dim"]))
    opt = torch.optim.Adam(model.parameters(), lr=float(cfg["lr"]))
    xt = torch.as_tensor(x_train, dtype=torch.float32)
    xv = torch.as_tensor(x_val if len(x_val) > 1 else x_train, dtype=torch.float32)
    bs, beta = int(cfg["batch_size"]), float(cfg["beta"])
    best, best_state, history = np.inf, None, []
    for epoch in range(int(cfg["epochs"])):
        model.train()
        perm = torch.randperm(len(xt), generator=gen)
        total = 0.0
        for start in range(0, len(xt), bs):
            idx = perm[start : start + bs]
            if len(idx) < 2:  # BatchNorm needs 2 rows
                continue
            loss = vae_loss(model, xt[idx], beta)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        model.eval()
        with torch.no_grad():
            torch.manual_seed(seed + 7919 * (epoch + 1))
            val = float(vae_loss(model, xv, beta))
        history.append({"epoch": epoch, "train_loss": total / max(len(xt), 1), "val_loss": val})
        log.info("vae epoch %d train %.4f val %.4f", epoch, history[-1]["train_loss"], val)
        if val < best:
            best, best_state = val, {k: v.clone() for k, v in model.state_dict().items()}
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return model, history


def vae_embed(model: VAE, x: np.ndarray, output: str) -> np.ndarray:
    """(mu, logvar) (n, 2*latent) or mu (n, latent) of standardised features x."""
    with torch.no_grad():
        mu, logvar = model.encode(torch.as_tensor(x, dtype=torch.float32))
    return (torch.cat([mu, logvar], 1) if output == "mean_logvar" else mu).numpy()


# ---------------------------------------------------------------- build
def build(
    name: str, events: pd.DataFrame, objects: np.ndarray, hl: np.ndarray, cfg: Mapping, seed: int
) -> np.ndarray:
    """The standardised baseline `name` for every event: float32 (n, d)."""
    train_bkg = ((events["subset"] == "train") & (events["group"] >= 0)).to_numpy()
    if name == "source":
        return standardize(source_features(objects, hl), train_bkg).astype(np.float32)
    if name == "leading":
        return standardize(leading_features(objects, int(cfg["leading_dim"])), train_bkg).astype(np.float32)
    if name == "ref22":
        return standardize(ref22_features(objects), train_bkg).astype(np.float32)
    if name == "vae":
        x = standardize(source_features(objects, hl), train_bkg).astype(np.float32)
        val_bkg = ((events["subset"] == "val") & (events["group"] >= 0)).to_numpy()
        model, _ = train_vae(x[train_bkg], x[val_bkg], cfg["vae"], seed)
        return standardize(vae_embed(model, x, cfg["vae"]["output"]), train_bkg).astype(np.float32)
    raise SaladError(f"baselines: unknown baseline {name!r}; known: {', '.join(NAMES)}")


def embedding_frame(event_id: np.ndarray, z: np.ndarray) -> pd.DataFrame:
    """A frame in the embeddings contract: event_id int64, z0..z{d-1} float32."""
    cols = {"event_id": np.asarray(event_id, np.int64)}
    cols.update({f"{LATENT_PREFIX}{i}": z[:, i].astype(np.float32) for i in range(z.shape[1])})
    return pd.DataFrame(cols)


def cli(argv: list[str]) -> None:
    parser = stage_parser(__doc__, prog="salad embed-baseline")
    parser.add_argument("--name", required=True, choices=NAMES)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--preselected", nargs="+", required=True)
    parser.add_argument("--split", nargs="+", required=True)
    parser.add_argument("--output", required=True)
    args = parser.parse_args(argv)
    setup_logging()
    torch.set_num_threads(args.threads)
    cfg = parse_stage_config(args.config)["baselines"]
    events, objects, hl = read_objects(args.preselected, args.split)
    z = build(args.name, events, objects, hl, cfg, int(cfg.get("seed", 0)) + args.seed)
    write_parquet(
        embedding_frame(events["event_id"].to_numpy(), z),
        args.output,
        provenance("embed-baseline", cfg, name=args.name, seed=args.seed),
    )
    log.info("wrote %s: %d events x %d dims", args.output, *z.shape)
