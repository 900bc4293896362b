"""Exact k-nearest-neighbour search by inner product, and the tie rule every backend shares.

The ranking rule (see :mod:`sstl.eval.retrieval`): most similar first, equal similarities in gallery
order (lower index first), also at the k-th place. faiss and the torch fallback keep ``k + 1``
neighbours so that a tie AT the k-th place is visible; such queries are re-ranked exactly.
"""

from __future__ import annotations

from types import ModuleType

import numpy as np
import torch

from sstl.runtime import UserError

CHUNK_BYTES = 256 * 2**20  # torch search: at most this many bytes of similarities at once


def rank(sims: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sort each row of ``[Q, m]`` neighbours by (-similarity, gallery index)."""
    order = np.lexsort((idx, -sims), axis=1)
    return np.take_along_axis(sims, order, 1), np.take_along_axis(idx, order, 1)


def boundary_tied(sims: np.ndarray, k: int) -> np.ndarray:
    """Rows of ``[Q, k + 1]`` ranked similarities whose k-th and (k+1)-th best are equal."""
    if sims.shape[1] <= k:  # the whole gallery is kept: no boundary
        return np.zeros(len(sims), dtype=bool)
    return sims[:, k - 1] == sims[:, k]


def _lowest_index_top(s: torch.Tensor, kth: torch.Tensor, k: int) -> torch.Tensor:
    """``s [n, G]`` similarities and ``kth [n]`` their k-th best value -> ``[n, k]`` gallery
    indices: every item above ``kth`` (fewer than k), then the lowest-index items equal to it."""
    rev = torch.arange(s.shape[1], 0, -1, dtype=torch.int32)  # (G,) lower index, larger key
    key = torch.where(s == kth[:, None], rev, 0)
    key.masked_fill_(s > kth[:, None], s.shape[1] + 1)
    return key.topk(k, dim=1).indices


def search_torch(
    query: np.ndarray, gallery: np.ndarray, k: int, chunk_bytes: int = CHUNK_BYTES
) -> tuple[np.ndarray, np.ndarray]:
    """Chunked ``query @ gallery.T`` + ``topk``: ``[Q, D]``, ``[G, D]`` float32 ->
    ``(sims [Q, k], index [Q, k])`` ranked by the rule; ``k <= G``."""
    g = torch.from_numpy(gallery)  # shares memory
    rows = max(1, chunk_bytes // (4 * len(gallery)))
    group = max(1, rows // 8)  # tied rows are resolved in groups: ~1/3 of a chunk of masks
    k1 = min(k + 1, len(gallery))  # one more neighbour, to see a tie at the k-th place
    sims = np.empty((len(query), k), dtype=np.float32)
    idx = np.empty((len(query), k), dtype=np.int64)
    for start in range(0, len(query), rows):
        s = torch.from_numpy(query[start : start + rows]) @ g.T  # (rows, G)
        top = s.topk(k1, dim=1)  # (rows, k1), best first
        top_s, top_i = top.values.numpy(), top.indices.numpy()
        for r0 in range(0, len(s), group):
            tied = r0 + np.flatnonzero(boundary_tied(top_s[r0 : r0 + group], k))
            if tied.size:
                st = s[torch.from_numpy(tied)]  # (n, G) copy of the tied rows
                ti = _lowest_index_top(st, torch.from_numpy(top_s[tied, k - 1]), k)
                top_i[tied, :k], top_s[tied, :k] = ti.numpy(), st.gather(1, ti).numpy()
        sims[start : start + rows], idx[start : start + rows] = top_s[:, :k], top_i[:, :k]
    return rank(sims, idx)


def faiss_module() -> ModuleType:
    """faiss, an optional extra (``sstl[faiss]``): only the ``faiss`` backend needs it."""
    try:
        import faiss
    except ImportError:
        raise UserError(
            "retrieval.backend = 'faiss' needs the faiss package, which is not installed: "
            "pip install 'sstl[faiss]' (or faiss-cpu), or use backend 'int8' (the default) or "
            "'torch', which need nothing more"
        ) from None
    return faiss


def search_faiss(query: np.ndarray, gallery: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """``faiss.knn`` with inner product (the ``IndexFlatIP`` brute force, no index copy); same
    signature as :func:`search_torch`."""
    faiss = faiss_module()

    k1 = min(k + 1, len(gallery))  # one more neighbour, to see a tie at the k-th place
    sims, idx = faiss.knn(query, gallery, k1, metric=faiss.METRIC_INNER_PRODUCT)
    sims, idx = rank(sims, idx.astype(np.int64, copy=False))
    tied = np.flatnonzero(boundary_tied(sims, k))
    sims, idx = np.ascontiguousarray(sims[:, :k]), np.ascontiguousarray(idx[:, :k])
    if tied.size:  # faiss keeps any of the tied items: rank those queries exactly with torch
        sims[tied], idx[tied] = search_torch(np.ascontiguousarray(query[tied]), gallery, k)
    return sims, idx
