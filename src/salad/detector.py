"""Parametric ATLAS-like detector response on generator final states (vectorised per batch).

Input: a `FinalState` of flat numpy arrays (all final-state particles of a batch of events,
event-major order) plus the heavy-flavour hadrons used for jet truth labels. Output:
Delphes-like collections (`Collection`: flat float arrays per field + per-event counts),
pT ordered within each event. Units GeV. Simplifications (documented in docs/generation.md):
truth-particle isolation, flat efficiencies, Gaussian resolutions, no pileup, no fakes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field

import awkward as ak
import fastjet
import numpy as np

from .errors import SaladError

#: PDG ids that leave the detector unseen (neutrinos, neutralino LSP, gravitino).
INVISIBLE = np.array([12, 14, 16, 1000012, 1000014, 1000016, 1000022, 1000039])


@dataclass(frozen=True)
class DetectorConfig:
    """Detector parameters (config `generate.detector`); defaults are ATLAS-like."""

    visible_eta_max: float = 4.9
    # photons: ECAL sigma_E/E = sampling/sqrt(E) (+) constant; constant tuned to ATLAS's
    # ~1.6 GeV (68 % half width) H->yy peak
    photon_pt_min: float = 20.0
    photon_eta_max: float = 2.37
    em_crack: tuple = (1.37, 1.52)
    photon_eff: tuple = (0.95, 0.85)  # |eta| <= 1.5 / above
    photon_iso: tuple = (0.065, 0.05)  # calo (dR 0.2, pT>0.5) / track (dR 0.2, pT>1) per pT
    em_sampling: float = 0.10  # sqrt(GeV)
    em_constant: float = 0.015  # tuned: ggH m_yy 68 % half width 1.62 GeV
    electron_pt_min: float = 10.0
    electron_eta_max: float = 2.47
    electron_eff: tuple = (0.95, 0.85)
    electron_iso: tuple = (0.20, 0.15)
    muon_pt_min: float = 10.0
    muon_eta_max: float = 2.7
    muon_eff: tuple = (0.95, 0.85)
    muon_iso: tuple = (0.30, 0.15)
    muon_resolution: tuple = (0.01, 1e-4)  # sigma(pT)/pT = a (+) b*pT
    iso_cone: float = 0.2
    # jets: sigma(pT)/pT = N/pT (+) S/sqrt(pT) (+) C
    jet_radius: float = 0.4
    jet_pt_min: float = 25.0
    jet_eta_max: float = 4.4
    jet_resolution: tuple = (3.0, 0.75, 0.05)
    jet_overlap_dr: float = 0.4  # jets near selected photons/electrons removed
    fatjet_radius: float = 1.0
    fatjet_pt_min: float = 100.0
    fatjet_eta_max: float = 2.5
    # b-tagging by truth label (B hadron within dR, else C hadron, else light)
    btag_eff: tuple = (0.77, 0.20, 0.008)  # b / c / light
    btag_eta_max: float = 2.5
    btag_dr: float = 0.3
    btag_hadron_pt_min: float = 5.0
    met_soft_term: float = 0.5  # sigma per MET component = k * sqrt(sum ET)
    nsub_beta: float = 1.0
    # False: small-R Jet.Tau[5] written as zeros, as Delphes' stock cards do (they compute
    # N-subjettiness for fat jets only), so generated and user samples share tau32/tau43 = 0
    small_r_nsubjettiness: bool = True

    @classmethod
    def from_mapping(cls, values: Mapping | None, source: str = "generate.detector"):
        """Build from a config mapping (lists become tuples); unknown keys are errors."""
        values = dict(values or {})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise SaladError(f"{source}: unknown key(s) {', '.join(unknown)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


@dataclass
class FinalState:
    """Flat final-state particles of a batch of events (event-major)."""

    counts: np.ndarray  # (n_events,) particles per event
    pid: np.ndarray  # PDG id
    charge: np.ndarray  # electric charge
    px: np.ndarray
    py: np.ndarray
    pz: np.ndarray
    e: np.ndarray
    hf_counts: np.ndarray  # (n_events,) heavy-flavour hadrons per event
    hf_flavour: np.ndarray  # 5 (B hadron) or 4 (C hadron)
    hf_eta: np.ndarray
    hf_phi: np.ndarray


@dataclass
class Collection:
    """Flat per-object fields (float or int arrays of equal length) and per-event counts."""

    counts: np.ndarray
    fields: dict = field(default_factory=dict)


def pt_eta_phi(px, py, pz):
    """(pT, eta, phi) of momentum components; eta of a pT = 0 particle is +-1e9."""
    pt = np.hypot(px, py)
    with np.errstate(divide="ignore", invalid="ignore"):
        eta = np.arcsinh(np.where(pt > 0, pz / np.where(pt > 0, pt, 1.0), np.sign(pz) * 1e9))
    return pt, eta, np.arctan2(py, px)


def delta_phi(a, b):
    return (a - b + np.pi) % (2 * np.pi) - np.pi


def _offsets(counts):
    return np.concatenate([[0], np.cumsum(counts)])


def _same_event_pairs(evt_a, counts_b):
    """All (i, j) with object i of set A and object j of set B in the same event."""
    off = _offsets(counts_b)
    n = counts_b[evt_a]
    ia = np.repeat(np.arange(len(evt_a)), n)
    start = np.repeat(off[evt_a] - (np.cumsum(n) - n), n)
    return ia, start + np.arange(n.sum())


def _cone_sum(evt, eta, phi, counts_b, eta_b, phi_b, pt_b, radius):
    """Sum of pt_b within `radius` of each object (the object itself included if in B)."""
    ia, ib = _same_event_pairs(evt, counts_b)
    near = (eta[ia] - eta_b[ib]) ** 2 + delta_phi(phi[ia], phi_b[ib]) ** 2 < radius**2
    return np.bincount(ia, weights=np.where(near, pt_b[ib], 0.0), minlength=len(evt))


def _any_within(evt, eta, phi, counts_b, eta_b, phi_b, radius, select_b=None):
    """True for objects of A with an object of B (optionally masked) within `radius`."""
    ia, ib = _same_event_pairs(evt, counts_b)
    near = (eta[ia] - eta_b[ib]) ** 2 + delta_phi(phi[ia], phi_b[ib]) ** 2 < radius**2
    if select_b is not None:
        near &= select_b[ib]
    return np.bincount(ia, weights=near.astype(float), minlength=len(evt)) > 0


def _step_efficiency(rng, eta, eff):
    """Accept with eff[0] for |eta| <= 1.5, eff[1] above."""
    return rng.random(len(eta)) < np.where(np.abs(eta) <= 1.5, eff[0], eff[1])


def _smear(rng, value, rel_sigma):
    """value * (1 + rel_sigma * N(0,1)), kept positive."""
    return value * np.clip(1.0 + rel_sigma * rng.standard_normal(len(value)), 1e-3, None)


def em_resolution(cfg: DetectorConfig, energy):
    """Relative ECAL energy resolution sigma_E/E at energy `energy` [GeV]."""
    return np.hypot(cfg.em_sampling / np.sqrt(np.maximum(energy, 1e-6)), cfg.em_constant)


def jet_resolution(cfg: DetectorConfig, pt):
    n, s, c = cfg.jet_resolution
    pt = np.maximum(pt, 1e-6)
    return np.sqrt((n / pt) ** 2 + s**2 / pt + c**2)


def _sorted_collection(evt, n_events, key, fields):
    """Collection of objects in event `evt`, ordered by event then descending `key`."""
    order = np.lexsort((-key, evt))
    return Collection(
        np.bincount(evt, minlength=n_events).astype(np.int64),
        {name: np.asarray(v)[order] for name, v in fields.items()},
    )


class Detector:
    """Applies the parametric response to batches of final states."""

    def __init__(self, cfg: DetectorConfig | None = None):
        self.cfg = cfg or DetectorConfig()
        self._akt = fastjet.JetDefinition(fastjet.antikt_algorithm, self.cfg.jet_radius)
        self._akt_fat = fastjet.JetDefinition(fastjet.antikt_algorithm, self.cfg.fatjet_radius)
        self._kt_dummy = fastjet.JetDefinition(fastjet.kt_algorithm, 0.2)

    def reconstruct(self, fs: FinalState, rng: np.random.Generator) -> dict[str, Collection]:
        """Photon, Electron, Muon, Jet, FatJet, MissingET collections for one batch."""
        cfg = self.cfg
        nev = len(fs.counts)
        evt = np.repeat(np.arange(nev), fs.counts)
        pt, eta, phi = pt_eta_phi(fs.px, fs.py, fs.pz)
        apid = np.abs(fs.pid)
        invisible = np.isin(apid, INVISIBLE)
        visible = ~invisible & (np.abs(eta) < cfg.visible_eta_max)

        # isolation inputs: calorimeter-like (all visible) and tracks (charged, |eta|<2.5)
        calo = visible & (pt > 0.5)
        track = calo & (fs.charge != 0) & (pt > 1.0) & (np.abs(eta) < 2.5)
        iso_sets = {
            name: (np.bincount(evt[m], minlength=nev), eta[m], phi[m], pt[m])
            for name, m in (("calo", calo), ("track", track))
        }

        used = np.zeros(len(pt), bool)  # selected objects are not jet inputs
        met_x = np.bincount(evt[invisible], weights=fs.px[invisible], minlength=nev).astype(float)
        met_y = np.bincount(evt[invisible], weights=fs.py[invisible], minlength=nev).astype(float)
        sum_et = np.bincount(evt[visible], weights=pt[visible], minlength=nev).astype(float)

        def leptons_photons(mask, pt_min, eta_max, crack, eff, iso, resolution):
            ae = np.abs(eta)
            cand = np.flatnonzero(
                mask
                & visible
                & (pt > pt_min)
                & (ae < eta_max)
                & ~(crack & (ae > cfg.em_crack[0]) & (ae < cfg.em_crack[1]))
            )
            ce, cp, ct = eta[cand], phi[cand], pt[cand]
            iso_calo = _cone_sum(evt[cand], ce, cp, *iso_sets["calo"], cfg.iso_cone) - ct
            iso_trk = _cone_sum(evt[cand], ce, cp, *iso_sets["track"], cfg.iso_cone)
            iso_trk = iso_trk - np.where(track[cand], ct, 0.0)
            ok = (iso_calo < iso[0] * ct) & (iso_trk < iso[1] * ct)
            ok &= _step_efficiency(rng, ce, eff)
            sel = cand[ok]
            used[sel] = True
            reco_pt = _smear(rng, pt[sel], resolution(sel))
            nonlocal met_x, met_y
            met_x += np.bincount(evt[sel], weights=(pt[sel] - reco_pt) * np.cos(phi[sel]), minlength=nev)
            met_y += np.bincount(evt[sel], weights=(pt[sel] - reco_pt) * np.sin(phi[sel]), minlength=nev)
            return sel, reco_pt

        def em(sel):
            return em_resolution(cfg, pt[sel] * np.cosh(eta[sel]))

        def mu(sel):
            return np.hypot(cfg.muon_resolution[0], cfg.muon_resolution[1] * pt[sel])

        g_sel, g_pt = leptons_photons(
            apid == 22, cfg.photon_pt_min, cfg.photon_eta_max, True, cfg.photon_eff, cfg.photon_iso, em
        )
        e_sel, e_pt = leptons_photons(
            apid == 11,
            cfg.electron_pt_min,
            cfg.electron_eta_max,
            True,
            cfg.electron_eff,
            cfg.electron_iso,
            em,
        )
        m_sel, m_pt = leptons_photons(
            apid == 13, cfg.muon_pt_min, cfg.muon_eta_max, False, cfg.muon_eff, cfg.muon_iso, mu
        )
        out = {
            "Photon": _sorted_collection(
                evt[g_sel],
                nev,
                g_pt,
                {"PT": g_pt, "Eta": eta[g_sel], "Phi": phi[g_sel], "E": g_pt * np.cosh(eta[g_sel])},
            ),
            "Electron": _sorted_collection(
                evt[e_sel],
                nev,
                e_pt,
                {"PT": e_pt, "Eta": eta[e_sel], "Phi": phi[e_sel], "Charge": fs.charge[e_sel]},
            ),
            "Muon": _sorted_collection(
                evt[m_sel],
                nev,
                m_pt,
                {"PT": m_pt, "Eta": eta[m_sel], "Phi": phi[m_sel], "Charge": fs.charge[m_sel]},
            ),
        }

        # jets from visible particles that are not selected photons / leptons
        jet_in = visible & ~used
        counts_in = np.bincount(evt[jet_in], minlength=nev)
        inputs = ak.zip(
            {
                k: ak.unflatten(v[jet_in], counts_in)
                for k, v in (("px", fs.px), ("py", fs.py), ("pz", fs.pz), ("E", fs.e))
            }
        )
        overlap = (
            np.concatenate([evt[g_sel], evt[e_sel]]),
            np.concatenate([eta[g_sel], eta[e_sel]]),
            np.concatenate([phi[g_sel], phi[e_sel]]),
        )
        order = np.argsort(overlap[0], kind="stable")
        overlap = tuple(x[order] for x in overlap)
        jets, dmx, dmy = self._jets(inputs, nev, fs, rng, overlap)
        met_x += dmx
        met_y += dmy
        out["Jet"] = jets
        fat, dmx, dmy = self._jets(inputs, nev, fs, rng, None)
        out["FatJet"] = fat

        sigma = cfg.met_soft_term * np.sqrt(sum_et)
        met_x += sigma * rng.standard_normal(nev)
        met_y += sigma * rng.standard_normal(nev)
        out["MissingET"] = Collection(
            np.ones(nev, np.int64),
            {"MET": np.hypot(met_x, met_y), "Eta": np.zeros(nev), "Phi": np.arctan2(met_y, met_x)},
        )
        return out

    def _jets(self, inputs, nev, fs, rng, overlap):
        """Small-R jets (overlap given: removal, b-tag, MET terms) or large-R jets (None)."""
        cfg = self.cfg
        small = overlap is not None
        jet_def = self._akt if small else self._akt_fat
        radius = cfg.jet_radius if small else cfg.fatjet_radius
        pt_cluster = 15.0 if small else 0.8 * cfg.fatjet_pt_min
        cs = fastjet.ClusterSequence(inputs, jet_def)
        jets = cs.inclusive_jets(min_pt=pt_cluster)
        counts = ak.to_numpy(ak.num(jets)).astype(np.int64)
        evt = np.repeat(np.arange(nev), counts)
        px, py, pz, e = (
            ak.to_numpy(ak.flatten(jets[k]), allow_missing=False).astype(float)
            for k in ("px", "py", "pz", "E")
        )
        pt, eta, phi = pt_eta_phi(px, py, pz)
        mass = np.sqrt(np.clip(e**2 - px**2 - py**2 - pz**2, 0.0, None))
        scale = _smear(rng, np.ones_like(pt), jet_resolution(cfg, pt))
        reco_pt = pt * scale
        dmx = np.bincount(evt, weights=(pt - reco_pt) * np.cos(phi), minlength=nev)
        dmy = np.bincount(evt, weights=(pt - reco_pt) * np.sin(phi), minlength=nev)
        keep = reco_pt > (cfg.jet_pt_min if small else cfg.fatjet_pt_min)
        keep &= np.abs(eta) < (cfg.jet_eta_max if small else cfg.fatjet_eta_max)
        btag = np.zeros(len(pt), np.uint32)
        if small:
            ov_evt, ov_eta, ov_phi = overlap
            keep &= ~_any_within(
                evt, eta, phi, np.bincount(ov_evt, minlength=nev), ov_eta, ov_phi, cfg.jet_overlap_dr
            )
            hf_args = (fs.hf_counts, fs.hf_eta, fs.hf_phi, cfg.btag_dr)
            is_b = _any_within(evt, eta, phi, *hf_args, select_b=fs.hf_flavour == 5)
            is_c = _any_within(evt, eta, phi, *hf_args, select_b=fs.hf_flavour == 4) & ~is_b
            eff = np.where(is_b, cfg.btag_eff[0], np.where(is_c, cfg.btag_eff[1], cfg.btag_eff[2]))
            eff = eff * (np.abs(eta) < cfg.btag_eta_max)
            btag = (rng.random(len(pt)) < eff).astype(np.uint32)
        if small and not cfg.small_r_nsubjettiness:
            taus = np.zeros((int(keep.sum()), 5))
        else:
            taus = self._nsubjettiness(cs.constituents(min_pt=pt_cluster), keep, radius)
        k = keep
        coll = _sorted_collection(
            evt[k],
            nev,
            reco_pt[k],
            {
                "PT": reco_pt[k],
                "Eta": eta[k],
                "Phi": phi[k],
                "Mass": mass[k] * scale[k],
                "BTag": btag[k],
                "Tau[5]": taus,
            },
        )
        return coll, dmx, dmy

    def _nsubjettiness(self, constituents, keep, radius):
        """(n_kept, 5) normalised N-subjettiness tau_1..tau_5 (one-pass kT axes, beta from cfg,
        R0 = jet radius), made non-increasing in N."""
        flat = ak.flatten(constituents, axis=1)[keep]
        if len(flat) == 0:
            return np.zeros((0, 5))
        cs = fastjet.ClusterSequence(flat, self._kt_dummy)  # one "event" per jet
        taus = cs.njettiness(
            njets=[1, 2, 3, 4, 5], beta=self.cfg.nsub_beta, R0=radius, axes_definition="OnePass_KT_Axes"
        )
        taus = ak.to_numpy(taus).reshape(-1, 5)
        # the exact tau_N is non-increasing in N; the one-pass minimiser occasionally misses
        # the minimum (tau_N+1 > tau_N), so keep the best (smallest) value found so far
        return np.minimum.accumulate(taus, axis=1)


def heavy_flavour_label(pid):
    """5 for B hadrons, 4 for C hadrons (no b quark), 0 otherwise (quarks/diquarks are 0)."""
    aid = np.abs(pid)
    hadron = (aid > 100) & (aid < 1000000) & ((aid // 10) % 10 != 0)

    def has(q):
        return ((aid // 100) % 10 == q) | ((aid // 1000) % 10 == q)

    return np.where(hadron & has(5), 5, np.where(hadron & has(4), 4, 0))
