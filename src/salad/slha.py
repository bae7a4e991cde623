"""Minimal hand-written SLHA1 spectra for Pythia 8 SUSY processes.

Pythia needs MODSEL + MINPAR (tan beta) to treat a file as SUSY; MASS, the mixing
matrices (NMIX, UMIX, VMIX, sfermion mixing) and DECAY tables complete it. Every
sparticle not named in a spectrum spec sits at `heavy` GeV (decoupled). Masses in GeV.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from .errors import SaladError

#: Sparticle and heavy-Higgs PDG ids written to BLOCK MASS (decoupled unless overridden).
SPARTICLES = (
    35,
    36,
    37,
    1000001,
    2000001,
    1000002,
    2000002,
    1000003,
    2000003,
    1000004,
    2000004,
    1000005,
    2000005,
    1000006,
    2000006,
    1000011,
    2000011,
    1000012,
    1000013,
    2000013,
    1000014,
    1000015,
    2000015,
    1000016,
    1000021,
    1000022,
    1000023,
    1000025,
    1000035,
    1000024,
    1000037,
)

#: Neutralino mixing (rows chi1..chi4, columns bino, wino, higgsino_d, higgsino_u).
_S = 1.0 / np.sqrt(2.0)
NMIX = {
    "bino_lsp": [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, _S, -_S], [0, 0, _S, _S]],
    "wino_lsp": [[0, 1, 0, 0], [1, 0, 0, 0], [0, 0, _S, -_S], [0, 0, _S, _S]],
}
_IDENTITY2 = [[1, 0], [0, 1]]
_SMINPUTS = {1: 127.934, 2: 1.16637e-5, 3: 0.118, 4: 91.1876, 5: 4.18, 6: 172.5, 7: 1.777}


def _matrix(name: str, rows: Sequence[Sequence[float]]) -> str:
    lines = [f"BLOCK {name}"]
    lines += [f"  {i + 1}  {j + 1}  {float(v): .8e}" for i, row in enumerate(rows) for j, v in enumerate(row)]
    return "\n".join(lines)


def _decay_block(pid: int, width: float, channels: Sequence[Sequence]) -> str:
    lines = [f"DECAY {pid:9d}  {width:.6e}"]
    for channel in channels:
        br, *products = channel
        lines.append(f"   {float(br):.8e}  {len(products)}  " + "  ".join(f"{int(q):9d}" for q in products))
    return "\n".join(lines)


def render(spec: Mapping, source: str = "slha") -> str:
    """SLHA text for a spectrum spec.

    spec keys: `masses` {pdg: GeV} (required), `decays` {pdg: {width: GeV, channels:
    [[BR, id1, id2, ...], ...]}} (an empty channel list = stable), optional `tan_beta`
    (default 10), `rpv` (bool: MODSEL 4 = 1), `nmix` ('bino_lsp' | 'wino_lsp' or a 4x4
    list), `heavy` (GeV, default 5000).
    """
    try:
        heavy = float(spec.get("heavy", 5000.0))
        masses = {pid: heavy for pid in SPARTICLES}
        masses[1000025] = -heavy  # higgsino-like pair with opposite-sign mass eigenvalues
        masses[1000035] = heavy + 1.0
        masses[1000037] = heavy + 1.0
        masses.update({int(k): float(v) for k, v in spec["masses"].items()})
        nmix = spec.get("nmix", "bino_lsp")
        nmix = NMIX[nmix] if isinstance(nmix, str) else nmix
        if np.shape(nmix) != (4, 4):
            raise ValueError("nmix must be 4x4")
        decays = {int(k): v for k, v in (spec.get("decays") or {}).items()}
        for pid, dec in decays.items():
            total = sum(float(c[0]) for c in dec.get("channels", []))
            if dec.get("channels") and abs(total - 1.0) > 1e-6:
                raise ValueError(f"branching ratios of {pid} sum to {total}, not 1")
        tan_beta = float(spec.get("tan_beta", 10.0))
    except (KeyError, TypeError, ValueError) as exc:
        raise SaladError(f"{source}: bad SLHA spectrum spec ({exc})") from None
    blocks = [
        "# salad minimal SLHA1 spectrum (hand-written; not a model-consistent RGE output)",
        "BLOCK MODSEL\n    1    0    # general MSSM"
        + ("\n    4    1    # R-parity violation" if spec.get("rpv") else ""),
        "BLOCK SMINPUTS\n" + "\n".join(f"    {k}  {v:.6e}" for k, v in _SMINPUTS.items()),
        f"BLOCK MINPAR\n    3  {tan_beta:.6e}  # tan beta",
        "BLOCK MASS\n" + "\n".join(f"  {pid:9d}  {m: .6e}" for pid, m in masses.items()),
        _matrix("NMIX", nmix),
        _matrix("UMIX", _IDENTITY2),
        _matrix("VMIX", _IDENTITY2),
        _matrix("STOPMIX", _IDENTITY2),
        _matrix("SBOTMIX", _IDENTITY2),
        _matrix("STAUMIX", _IDENTITY2),
        "BLOCK ALPHA\n  -1.00000000e-01",
        f"BLOCK HMIX Q= 1.0e+03\n  1  {heavy:.6e}  # mu\n  2  {tan_beta:.6e}  # tan beta\n"
        f"  3  2.45000000e+02  # v\n  4  {heavy**2:.6e}  # mA^2",
    ]
    blocks += [
        _decay_block(pid, float(dec.get("width", 0.0)), dec.get("channels", []))
        for pid, dec in decays.items()
    ]
    return "\n".join(blocks) + "\n"


def write(spec: Mapping, path: str | Path, source: str = "slha") -> Path:
    """Write the SLHA file for `spec` to `path`; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(spec, source))
    return path
