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

import argparse
import logging
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from .artifacts import _open_parquet, list_column_to_array, provenance, read_parquet, write_parquet
from .config import parse_stage_config
from .contracts import SUBSETS
from .errors import SaladError

log = logging.getLogger("salad.baselines")

N_OBJ, N_FEAT = 11, 12
F_PT, F_ETA, F_PHI, F_MASS, F_BTAG = 0, 1, 2, 3, 4
TYPES = {"jet": 7, "fatjet": 8, "electron": 9, "muon": 10, "met": 11}   # one-hot feature index
LEADING_ORDER = [("met", 0), ("jet", 0), ("electron", 0), ("muon", 0), ("fatjet", 0), ("jet", 1),
                 ("electron", 1), ("muon", 1), ("fatjet", 1), ("jet", 2), ("jet", 3)]
REF22_FEATURES = ["met", "ht", "n_jets", "n_bjets", "n_leptons", "pt_j1", "pt_j2", "pt_l1", "m_jj"]
NAMES = ("source", "leading", "ref22", "vae")

PRESELECTED_COLUMNS = {"event_id": "int", "sample": "str", "group": "int", "weight": "float"}


# ---------------------------------------------------------------- event tables (shared readers)
def load_events(preselected: Sequence[str], split: Sequence[str],
                extra: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Join preselected files with their split files on event_id.

    Returns one row per preselected event: event_id, sample, group, weight [events/fb^-1],
    subset, plus `extra` preselected columns ({name: kind}, e.g. {"myy": "float"}).
    """
    frames = [read_parquet(p, {**PRESELECTED_COLUMNS, **(extra or {})}) for p in preselected]
    splits = [read_parquet(p, {"event_id": "int", "subset": "str"}) for p in split]
    events = (pd.concat(frames, ignore_index=True) if frames
              else pd.DataFrame(columns=list(PRESELECTED_COLUMNS)))
    subsets = pd.concat(splits, ignore_index=True) if splits else pd.DataFrame(columns=["event_id", "subset"])
    if events["event_id"].duplicated().any():
        raise SaladError(f"{', '.join(map(str, preselected))}: duplicate event_id values")
    bad = set(subsets["subset"].astype(str)) - set(SUBSETS)
    if bad:
        raise SaladError(f"{', '.join(map(str, split))}: unknown subset value(s) {sorted(bad)}")
    merged = events.merge(subsets, on="event_id", how="left", validate="one_to_one")
    if merged["subset"].isna().any():
        n = int(merged["subset"].isna().sum())
        raise SaladError(f"{', '.join(map(str, split))}: {n} preselected event(s) have no split entry")
    merged["subset"] = merged["subset"].astype(str)
    merged["group"] = merged["group"].astype(int)
    return merged


MEAN_PREFIX = "mu"   # embeddings columns mu0..mu{d-1}: latent means written next to a sampled z


def read_embedding(path: str, means: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Read an embeddings-contract file: (event_id int64 (n,), latent float32 (n, d)).

    means=True reads the latent means `mu0..` where the file has them (a variational encoder
    whose z is a sampled draw, see salad.encoder.embed), else the latent `z0..`."""
    names = _open_parquet(path).schema_arrow.names
    prefix = MEAN_PREFIX if means and f"{MEAN_PREFIX}0" in names else "z"
    found = [c for c in names if c.startswith(prefix) and c[len(prefix):].isdigit()]
    d = len(found)
    cols = [f"{prefix}{i}" for i in range(d)]
    if d == 0 or sorted(found, key=lambda c: int(c[len(prefix):])) != cols:
        raise SaladError(f"{path}: expected latent columns {prefix}0..{prefix}{{d-1}}, "
                         f"found {found}")
    frame = read_parquet(path, {"event_id": "int", **{c: "float" for c in cols}})
    if frame["event_id"].duplicated().any():
        raise SaladError(f"{path}: duplicate event_id values")
    return frame["event_id"].to_numpy(np.int64), frame[cols].to_numpy(np.float32)


def lookup(path: str, ids: np.ndarray, table_ids: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Rows of `values` (keyed by `table_ids`) for event ids `ids`; SaladError if any is missing."""
    order = np.argsort(table_ids)
    pos = np.searchsorted(table_ids, ids, sorter=order)
    pos = np.clip(pos, 0, len(table_ids) - 1)
    found = order[pos] if len(table_ids) else np.zeros(len(ids), int)
    if len(table_ids) == 0 or not np.array_equal(table_ids[found], ids):
        missing = int(len(ids) - np.isin(ids, table_ids).sum())
        raise SaladError(f"{path}: {missing} requested event id(s) not found")
    return values[found]


def latent_for(path: str, ids: np.ndarray, means: bool = False) -> np.ndarray:
    """Latent vectors (len(ids), d) float64 of the events `ids` from an embeddings file
    (the means where the file has them and `means`, see read_embedding)."""
    table_ids, z = read_embedding(path, means)
    return lookup(path, np.asarray(ids, np.int64), table_ids, z).astype(np.float64)


# ---------------------------------------------------------------- raw features
def load_raw(preselected: Sequence[str], split: Sequence[str]) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Events table, object tensors (n, 11, 12) and high-level (dR_yy, pT_yy) (n, 2)."""
    frames, objects = [], []
    for path in preselected:
        frame = read_parquet(path, {**PRESELECTED_COLUMNS, "dr_yy": "float", "pt_yy": "float",
                                    "objects": "list"})
        objects.append(list_column_to_array(path, frame["objects"], (N_OBJ, N_FEAT)))
        frames.append(frame.drop(columns="objects"))
    events = load_events(preselected, split)
    raw = pd.concat(frames, ignore_index=True)
    # load_events keeps file order, so rows align; check it
    if not np.array_equal(raw["event_id"].to_numpy(), events["event_id"].to_numpy()):
        raise SaladError("preselected inputs changed while reading")
    hl = raw[["dr_yy", "pt_yy"]].to_numpy(np.float32)
    return events, np.concatenate(objects) if objects else np.zeros((0, N_OBJ, N_FEAT), np.float32), hl


def _sorted_pt(objects: np.ndarray, kind: str) -> np.ndarray:
    """pT [GeV] of objects of one type, descending, padded with 0: (n, 11)."""
    mask = objects[:, :, TYPES[kind]] > 0.5
    pt = np.where(mask, objects[:, :, F_PT], 0.0)
    return -np.sort(-pt, axis=1)


def source_features(objects: np.ndarray, hl: np.ndarray) -> np.ndarray:
    """Flattened object tensor + (dR_yy, pT_yy): (n, 134)."""
    return np.concatenate([objects.reshape(len(objects), -1), hl], axis=1)


def leading_features(objects: np.ndarray, dim: int) -> np.ndarray:
    """pT [GeV] of the first `dim` entries of LEADING_ORDER: (n, dim)."""
    if not 1 <= dim <= len(LEADING_ORDER):
        raise SaladError(f"baselines.leading_dim: must be 1..{len(LEADING_ORDER)}, got {dim}")
    cache = {kind: _sorted_pt(objects, kind) for kind in {k for k, _ in LEADING_ORDER[:dim]}}
    return np.stack([cache[kind][:, rank] for kind, rank in LEADING_ORDER[:dim]], axis=1)


def ref22_features(objects: np.ndarray) -> np.ndarray:
    """The nine REF22_FEATURES: (n, 9); GeV for pT, H_T, MET, m_jj; counts for N_*."""
    is_jet = objects[:, :, TYPES["jet"]] > 0.5
    is_lep = (objects[:, :, TYPES["electron"]] > 0.5) | (objects[:, :, TYPES["muon"]] > 0.5)
    pt = objects[:, :, F_PT]
    jets = _sorted_pt(objects, "jet")
    lead_lep = np.where(is_lep, pt, 0.0).max(axis=1)
    met = np.where(objects[:, :, TYPES["met"]] > 0.5, pt, 0.0).sum(axis=1)
    # m_jj of the two leading jets (jets are pT ordered within their type)
    n = len(objects)
    jet_rows = np.argsort(~is_jet, axis=1, kind="stable")[:, :2]
    j = objects[np.arange(n)[:, None], jet_rows]                     # (n, 2, 12)
    px, py = j[..., F_PT] * np.cos(j[..., F_PHI]), j[..., F_PT] * np.sin(j[..., F_PHI])
    pz = j[..., F_PT] * np.sinh(j[..., F_ETA])
    e = np.sqrt(px ** 2 + py ** 2 + pz ** 2 + j[..., F_MASS] ** 2)
    m2 = e.sum(1) ** 2 - px.sum(1) ** 2 - py.sum(1) ** 2 - pz.sum(1) ** 2
    two = is_jet.sum(axis=1) >= 2
    mjj = np.where(two, np.sqrt(np.clip(m2, 0.0, None)), 0.0)
    return np.stack([met, np.where(is_jet, pt, 0).sum(1), is_jet.sum(1),
                     (is_jet & (objects[:, :, F_BTAG] > 0.5)).sum(1), is_lep.sum(1),
                     jets[:, 0], jets[:, 1], lead_lep, mjj], axis=1).astype(np.float64)


def standardize(x: np.ndarray, fit_mask: np.ndarray) -> np.ndarray:
    """(x - mean) / std with mean, std of the rows `fit_mask`; constant columns get std 1."""
    if not fit_mask.any():
        raise SaladError("baselines: no background events in the encoder-half train split")
    mean = x[fit_mask].mean(axis=0)
    std = x[fit_mask].std(axis=0)
    std = np.where(std > 1e-12, std, 1.0)
    return (x - mean) / std


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
        self.decoder = torch.nn.Sequential(*[m for a, b in zip(back, back[1:]) for m in block(a, b)],
                                           torch.nn.Linear(back[-1], n_in))
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
    kl = -0.5 * (1 + logvar - mu ** 2 - logvar.exp()).sum(dim=1)
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
            idx = perm[start:start + bs]
            if len(idx) < 2:        # BatchNorm needs 2 rows
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
def build(name: str, events: pd.DataFrame, objects: np.ndarray, hl: np.ndarray, cfg: Mapping,
          seed: int) -> np.ndarray:
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
    cols.update({f"z{i}": z[:, i].astype(np.float32) for i in range(z.shape[1])})
    return pd.DataFrame(cols)


def cli(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="salad embed-baseline", description=__doc__)
    parser.add_argument("--name", required=True, choices=NAMES)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--preselected", nargs="+", required=True)
    parser.add_argument("--split", nargs="+", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--config", help="JSON: {baselines: {...}}")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    torch.set_num_threads(args.threads)
    cfg = parse_stage_config(args.config)["baselines"]
    events, objects, hl = load_raw(args.preselected, args.split)
    z = build(args.name, events, objects, hl, cfg, int(cfg.get("seed", 0)) + args.seed)
    write_parquet(embedding_frame(events["event_id"].to_numpy(), z), args.output,
                  provenance("embed-baseline", cfg, name=args.name, seed=args.seed))
    log.info("wrote %s: %d events x %d dims", args.output, *z.shape)
