"""Chunked reader for Delphes-layout ROOT files (tree ``Delphes``), plain uproot.

Why plain ``uproot`` iteration and not coffea's ``DelphesSchema``: the preselection needs
about 35 leaves out of a Delphes tree's hundreds; ``TTree.iterate`` reads exactly those, one
chunk of ``step_size`` entries at a time, so memory is O(step_size) whatever the file size,
with no dask graph or behaviour classes to build. It also reads layouts coffea's schema
rejects (``Event`` stored flat instead of as a one-entry collection).

Accepted layouts (one entry per event; ``Coll`` is a collection name):
- leaves ``Coll/Coll.Field`` (real Delphes and uproot-written files alike) or ``Coll.Field``;
- ``Event.Number``/``Event.Weight`` flat or as a one-entry collection (real Delphes, coffea);
- N-subjettiness as ``Coll.Tau[5]`` (real Delphes), ``Coll.Tau`` (var * 5) or split leaves
  ``Coll.Tau1..Tau5`` (what uproot can write: it cannot write jagged fixed-size arrays).
A field is requested as ``"Coll.Field"``; ``"Jet.Tau3"`` means τ3 whichever layout holds it.

Missing collections: files from Delphes' stock ATLAS/CMS cards have no ``FatJet`` branch (and a
card may drop ``Electron`` or ``Muon``). A collection named in ``optional`` of which *none* of
the requested fields exists is read as empty in every event (zero objects, i.e. zero padding
downstream), with one warning per file naming it; ``Chunk.missing`` lists such collections. Any
other absent field fails with one SaladError listing *all* missing branches of the file.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import awkward as ak
import numpy as np
import uproot

from .artifacts import note_input
from .errors import SaladError

TREE = "Delphes"
LOG = logging.getLogger("salad.delphes")
_TAU = re.compile(r"^Tau([1-5])$")


@dataclass
class Chunk:
    """One chunk of one file: `data[field]` holds one array per requested field."""

    path: str
    file_index: int
    entry_start: int
    data: dict[str, ak.Array]
    missing: tuple[str, ...] = ()  # optional collections absent from this file (read as empty)

    def __len__(self) -> int:
        return len(next(iter(self.data.values())))


def open_tree(path: str | os.PathLike, tree: str = TREE):
    """Open `path` and return its TTree `tree`, with a SaladError for every bad-input case."""
    path = Path(path)
    if not path.exists():
        raise SaladError(f"{path}: file not found")
    note_input(path)
    try:
        handle = uproot.open(path)
    except Exception as exc:  # uproot raises many types for truncated/corrupt files
        raise SaladError(f"{path}: not a readable ROOT file ({type(exc).__name__}: {exc})") from None
    try:
        names = {k.split(";")[0] for k in handle.keys(recursive=False)}
    except Exception as exc:
        raise SaladError(f"{path}: corrupt ROOT directory ({type(exc).__name__}: {exc})") from None
    if tree not in names:
        raise SaladError(f"{path}: no tree {tree!r} (keys: {', '.join(sorted(names)) or 'none'})")
    try:
        return handle[tree]
    except Exception as exc:
        raise SaladError(f"{path}: cannot read tree {tree!r} ({type(exc).__name__}: {exc})") from None


def _has(tree, name: str) -> bool:
    try:
        return tree.get(name) is not None
    except Exception:
        return False


def _resolve(tree, field: str) -> tuple[str, int | None] | None:
    """Branch name holding `field` ("Coll.Field") and, for a τ array, the index in it; None
    when the tree has no such branch."""
    coll, _, leaf = field.partition(".")
    for prefix in (f"{coll}/{coll}.", f"{coll}."):
        if _has(tree, prefix + leaf):
            return prefix + leaf, None
    tau = _TAU.match(leaf)
    if tau:
        for prefix in (f"{coll}/{coll}.", f"{coll}."):
            for name in (prefix + "Tau[5]", prefix + "Tau"):
                if _has(tree, name):
                    return name, int(tau.group(1)) - 1
    return None


def _locate(tree, path, fields: Sequence[str], optional: Sequence[str]):
    """({field: (branch, index)} of the present fields, absent optional collections).

    SaladError listing every missing branch unless all of them belong to optional collections
    that are absent as a whole."""
    where = {field: _resolve(tree, field) for field in fields}
    colls = {f.partition(".")[0] for f in fields}
    absent = sorted(
        c
        for c in colls
        if c in optional and all(where[f] is None for f in fields if f.partition(".")[0] == c)
    )
    missing = [f for f, w in where.items() if w is None and f.partition(".")[0] not in absent]
    if missing:
        names = ", ".join(f"{c}/{c}.{leaf}" for c, _, leaf in (f.partition(".") for f in missing))
        raise SaladError(f"{path}: tree {TREE!r} has no branch {names} ({len(missing)} missing branch(es))")
    if absent:
        LOG.warning(
            "%s: warning: no %s collection; read as zero objects in every event (zero padding)",
            path,
            " / ".join(absent),
        )
    return {f: w for f, w in where.items() if w is not None}, tuple(absent)


def _empty_lists(n: int) -> ak.Array:
    """`n` empty float32 lists (an absent collection)."""
    return ak.unflatten(np.zeros(0, np.float32), np.zeros(n, np.int64))


def _normalise(path, field: str, array: ak.Array, index: int | None) -> ak.Array:
    """Event.* -> one value per event; τ arrays -> the requested component."""
    if index is not None:
        layout = array.layout
        if (
            isinstance(layout, ak.contents.ListOffsetArray)  # var * n: one numpy column
            and isinstance(layout.content, ak.contents.RegularArray)
            and isinstance(layout.content.content, ak.contents.NumpyArray)
        ):
            inner = layout.content
            flat = inner.content.data[: len(inner) * inner.size].reshape(len(inner), inner.size)
            column = ak.contents.NumpyArray(np.ascontiguousarray(flat[:, index]))
            return ak.Array(ak.contents.ListOffsetArray(layout.offsets, column))
        return array[..., index]
    if field.startswith("Event.") and array.ndim == 2:
        counts = ak.num(array, axis=1)
        if not np.all(ak.to_numpy(counts) == 1):
            raise SaladError(f"{path}: {field} must have exactly one entry per event")
        return ak.flatten(array, axis=1)
    return array


def n_entries(path: str | os.PathLike, tree: str = TREE) -> int:
    """Number of entries (events) in the tree of `path`."""
    return int(open_tree(path, tree).num_entries)


def iterate(
    paths: Sequence[str | os.PathLike],
    fields: Sequence[str],
    step_size: int,
    tree: str = TREE,
    optional: Sequence[str] = (),
) -> Iterator[Chunk]:
    """Yield Chunks of at most `step_size` events over `paths` in order (files never mixed).

    optional: collections that may be absent from a file (read as empty, see module doc)."""
    for file_index, path in enumerate(paths):
        ttree = open_tree(path, tree)
        where, absent = _locate(ttree, path, fields, optional)
        branches = sorted({name for name, _ in where.values()})
        start = 0
        try:
            for arrays in ttree.iterate(branches, step_size=step_size, library="ak"):
                data = {f: _normalise(path, f, arrays[name], idx) for f, (name, idx) in where.items()}
                data.update({f: _empty_lists(len(arrays)) for f in fields if f not in where})
                data = {f: data[f] for f in fields}
                chunk = Chunk(str(path), file_index, start, data, absent)
                start += len(arrays)
                yield chunk
        except SaladError:
            raise
        except Exception as exc:
            raise SaladError(
                f"{path}: cannot read entries from {start} on "
                f"({type(exc).__name__}: {exc}); truncated or corrupt file?"
            ) from None
        if start != ttree.num_entries:
            raise SaladError(f"{path}: read {start} of {ttree.num_entries} entries; truncated file?")
