"""Pure nearest-neighbour retrieval top-k accuracy (paper Sec 4.4), plus the peers' protocols.

The standard protocol (the paper's, VCOP's): every query (a test clip) ranks the whole gallery (all
train clips) by cosine similarity, most similar first; a query is a hit at k if its class is among
the classes of its k first ranked gallery items. With k larger than the gallery, all of it counts.

Ties. Exactly equal similarities (duplicate clips, or the near-collapsed features of a badly
trained model, where every similarity rounds to the same float32) are ordered by gallery index,
lower first, i.e. a stable sort of the similarities. The order faiss or torch return among equal
values is an implementation detail, so :func:`nearest` re-sorts its neighbours by (-similarity,
index), and where the ``m``-th and ``(m+1)``-th best similarities of a query are equal (a tie AT
the boundary of the kept neighbours, where a backend keeps any of the tied items) it recomputes that
query's similarities with the torch path and keeps the lowest-index tied items. So the ranking is
exactly the stable rule applied to the similarities the backend computed. faiss and torch round the
same dot product differently (~1e-7), so where two items are within rounding of each other the two
backends may order them differently; only degenerate features (near-duplicates) have such
near-ties, and there each backend still applies the rule to its own values. A collapsed model thus
scores what its first gallery items' classes give (about chance), never more: an earlier
tie-inclusive rule ("hit if ANY same-class item is within 1e-5 of the k-th similarity") counted
nearly every query of such a model as a hit.

Scale. UCF101 split 1 at full size is 37,830 queries x 95,370 gallery clips x 512-d. Only
``max(ks) + 1`` neighbours per query are kept, never the full similarity matrix:
- ``backend="faiss"``: ``faiss.knn`` with inner product (the brute-force search ``IndexFlatIP``
  runs, without copying the gallery into an index), blocked sgemm + heaps inside faiss;
- ``backend="torch"``: chunked ``query @ gallery.T`` + ``topk``, at most 256 MiB of similarities
  at a time.
- ``backend="bf16"``: a bfloat16 matmul shortlists ``k + 64`` items per query, whose float32
  similarities are then ranked: the exact ranking unless bf16 rounding (~1e-4) pushes a true
  top-k item out of the shortlist. Where the CPU computes bf16 natively (AVX512_BF16, AMX) its
  matmul runs ~2.4x float32's, but gathering the shortlisted rows costs back much of it: 19.6 s
  against faiss's 24.0 s at full size on 2 cores (``bench/retrieval.py``); slower elsewhere.
Inputs that are already unit-norm float32 are used in place; others get one normalised copy.
The search is exact float32, 2 * Q * G * d = 3.7 TFLOP at full size: compute-bound at the
CPU's float32 peak, 24 s wall / 47 CPU-seconds with faiss on 2 idle AVX-512 cores, +83 MiB
(``bench/retrieval.py``). Boundary ties cost one more torch pass over the tied queries:
nothing on real features, about one more search when every query is tied (collapsed features).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import torch

Backend = Literal["faiss", "torch", "bf16"]
DEFAULT_KS = (1, 5, 10, 20, 50)
_CHUNK_BYTES = 256 * 2**20  # torch backend: at most this many bytes of similarities at once


def _f32(x: Any, name: str, ndim: int) -> np.ndarray:
    """C-contiguous float32 numpy view (or copy) of an array or CPU/GPU tensor."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.ndim != ndim:
        raise ValueError(f"{name} has shape {x.shape}; expected {ndim} dimensions")
    return x


def _labels(y: Any, n: int, name: str) -> np.ndarray:
    if isinstance(y, torch.Tensor):
        y = y.detach().cpu().numpy()
    y = np.asarray(y).astype(np.int64, copy=False)
    if y.shape != (n,):
        raise ValueError(f"{name} has shape {y.shape}; expected ({n},), one label per row")
    return y


def l2_normalize(x: Any) -> np.ndarray:
    """``[N, D]`` -> ``[N, D]`` float32 unit rows; returned as is when already unit-norm.

    Zero rows stay zero (cosine similarity 0 with everything).
    """
    x = _f32(x, "features", 2)
    sq = np.einsum("ij,ij->i", x, x)  # no [N, D] temporary, unlike np.linalg.norm
    if np.all(np.abs(sq - 1.0) < 1e-4):
        return x
    return x / np.maximum(np.sqrt(sq), 1e-12)[:, None]


def video_mean(feats: Any) -> np.ndarray:
    """VCOP's protocol: ``[N, K, D]`` clip features -> ``[N, D]`` mean over a video's K clips."""
    feats = _f32(feats, "feats", 3)
    return feats.mean(axis=1)


def center_normalize(query: Any, gallery: Any) -> tuple[np.ndarray, np.ndarray]:
    """CoCLR's protocol: subtract the GALLERY mean from both sides, then L2-normalise.

    ``query [Q, D]``, ``gallery [G, D]`` -> new float32 arrays of the same shapes.
    """
    query, gallery = _f32(query, "query", 2), _f32(gallery, "gallery", 2)
    mean = gallery.mean(axis=0, dtype=np.float64).astype(np.float32)
    return l2_normalize(query - mean), l2_normalize(gallery - mean)


def _rank(sims: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sort each row of ``[Q, m]`` neighbours by (-similarity, gallery index)."""
    order = np.lexsort((idx, -sims), axis=1)
    return np.take_along_axis(sims, order, 1), np.take_along_axis(idx, order, 1)


def _boundary_tied(sims: np.ndarray, k: int) -> np.ndarray:
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


def _search_torch(
    query: np.ndarray, gallery: np.ndarray, k: int, chunk_bytes: int = _CHUNK_BYTES
) -> tuple[np.ndarray, np.ndarray]:
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
            tied = r0 + np.flatnonzero(_boundary_tied(top_s[r0 : r0 + group], k))
            if tied.size:
                st = s[torch.from_numpy(tied)]  # (n, G) copy of the tied rows
                ti = _lowest_index_top(st, torch.from_numpy(top_s[tied, k - 1]), k)
                top_i[tied, :k], top_s[tied, :k] = ti.numpy(), st.gather(1, ti).numpy()
        sims[start : start + rows], idx[start : start + rows] = top_s[:, :k], top_i[:, :k]
    return _rank(sims, idx)


def _search_faiss(query: np.ndarray, gallery: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    import faiss  # imported here: only this backend needs it

    k1 = min(k + 1, len(gallery))  # one more neighbour, to see a tie at the k-th place
    sims, idx = faiss.knn(query, gallery, k1, metric=faiss.METRIC_INNER_PRODUCT)
    sims, idx = _rank(sims, idx.astype(np.int64, copy=False))
    tied = np.flatnonzero(_boundary_tied(sims, k))
    sims, idx = np.ascontiguousarray(sims[:, :k]), np.ascontiguousarray(idx[:, :k])
    if tied.size:  # faiss keeps any of the tied items: rank those queries exactly with torch
        sims[tied], idx[tied] = _search_torch(np.ascontiguousarray(query[tied]), gallery, k)
    return sims, idx


_BLOCK = 64  # bf16 shortlist: gallery items per block of the two-level top-m selection


def _search_bf16(
    query: np.ndarray, gallery: np.ndarray, k: int, rows: int = 512
) -> tuple[np.ndarray, np.ndarray]:
    """bf16 shortlist, exact float32 re-rank: the ``m = k + 64`` best items of each query by a
    bfloat16 matmul, then the float32 similarities of those m only, ranked as everywhere else.

    Approximate only in whether a true top-k item makes the shortlist: it misses it if bf16
    rounding (measured: std 1.3e-4, max 9e-4 on 512-d unit rows) exceeds the gap between its
    similarity and the m-th best; `bench/retrieval.py` checks the rankings against faiss.
    The top-m selection is exact and cheap: the max of each block of 64 items, the m best blocks
    (they hold the m best items), then the m best items in them.
    """
    g32 = torch.from_numpy(gallery)
    n_gal = len(gallery)
    m = min(n_gal, k + 64)
    pad = -n_gal % _BLOCK
    g16 = torch.cat([g32, g32.new_zeros(pad, g32.shape[1])]).to(torch.bfloat16)  # (Gp, D)
    n_blocks = len(g16) // _BLOCK
    nb = min(n_blocks, m)  # blocks kept: the m best items lie in the m best blocks
    sims = np.empty((len(query), k), dtype=np.float32)
    idx = np.empty((len(query), k), dtype=np.int64)
    s16 = torch.empty(rows, len(g16), dtype=torch.bfloat16)
    for start in range(0, len(query), rows):
        q32 = torch.from_numpy(query[start : start + rows])
        r = len(q32)
        s = torch.mm(q32.to(torch.bfloat16), g16.T, out=s16[:r])  # (r, Gp)
        s[:, n_gal:] = -torch.inf  # padding never enters the shortlist
        blocks = s.view(r, n_blocks, _BLOCK)
        best = blocks.amax(dim=2).topk(nb, dim=1).indices  # (r, nb)
        items = blocks.gather(1, best[:, :, None].expand(-1, -1, _BLOCK))  # (r, nb, 64)
        pick = items.flatten(1).topk(m, dim=1).indices  # (r, m) into the kept blocks
        cand = (best[:, :, None] * _BLOCK + torch.arange(_BLOCK)).flatten(1).gather(1, pick)
        exact = torch.einsum("rd,rmd->rm", q32, g32[cand])  # (r, m) float32
        top_s, top_i = _rank(exact.numpy(), cand.numpy())
        tied = np.flatnonzero(_boundary_tied(top_s, k))
        top_s, top_i = np.ascontiguousarray(top_s[:, :k]), np.ascontiguousarray(top_i[:, :k])
        if tied.size:  # a tie at the k-th place: rank those queries exactly, as faiss does
            q_tied = np.ascontiguousarray(query[start + tied])
            top_s[tied], top_i[tied] = _search_torch(q_tied, gallery, k)
        sims[start : start + r], idx[start : start + r] = top_s, top_i
    return sims, idx


def nearest(
    query: Any, gallery: Any, k: int, backend: Backend = "faiss"
) -> tuple[np.ndarray, np.ndarray]:
    """The ``m = min(k, G)`` first items of each query's ranking (module docstring).

    Brute-force inner product (cosine when rows are unit vectors): ``query [Q, D]``,
    ``gallery [G, D]`` -> ``(sims [Q, m] float32, index [Q, m] int64)``, ranked by
    (-similarity, gallery index): equal similarities in gallery order, also at the m-th place.
    """
    query, gallery = _f32(query, "query", 2), _f32(gallery, "gallery", 2)
    k = min(k, len(gallery))
    if backend == "faiss":
        return _search_faiss(query, gallery, k)
    if backend == "torch":
        return _search_torch(query, gallery, k)
    if backend == "bf16":
        return _search_bf16(query, gallery, k)
    raise ValueError(f"backend = {backend!r} is not allowed: 'faiss', 'torch' or 'bf16'")


def topk_accuracy(
    query: Any,
    query_labels: Any,
    gallery: Any,
    gallery_labels: Any,
    ks: Sequence[int] = DEFAULT_KS,
    backend: Backend = "faiss",
) -> dict[int, float]:
    """Top-k retrieval accuracy in percent, cosine similarity, standard protocol with ties broken
    by gallery index (module docstring).

    ``query [Q, D]``, ``query_labels [Q]``, ``gallery [G, D]``, ``gallery_labels [G]`` (numpy
    arrays or tensors) -> ``{k: percent of queries whose class is among their k first ranked
    gallery items}``.
    """
    query, gallery = _f32(query, "query", 2), _f32(gallery, "gallery", 2)
    if query.shape[1] != gallery.shape[1]:
        raise ValueError(
            f"query dim {query.shape[1]} != gallery dim {gallery.shape[1]}: "
            "both must come from the same layer"
        )
    if len(query) == 0 or len(gallery) == 0:
        raise ValueError(f"empty retrieval: {len(query)} queries, {len(gallery)} gallery items")
    for name, x in (("query", query), ("gallery", gallery)):
        if not np.isfinite(x).all():
            raise ValueError(f"{name} features contain NaN or inf: the model diverged; no ranking")
    ks = tuple(int(k) for k in ks)
    if not ks or min(ks) < 1:
        raise ValueError(f"ks = {ks!r} is not allowed: a non-empty list of integers >= 1")
    qlab = _labels(query_labels, len(query), "query_labels")
    glab = _labels(gallery_labels, len(gallery), "gallery_labels")
    query, gallery = l2_normalize(query), l2_normalize(gallery)

    _, idx = nearest(query, gallery, max(ks), backend)  # (Q, m), m = min(max k, G)
    same = glab[idx] == qlab[:, None]  # (Q, m)
    never = np.iinfo(np.int64).max  # no item of the class among the m kept
    first = np.where(same.any(axis=1), same.argmax(axis=1), never)  # (Q,) rank of 1st same-class
    return {k: float(100.0 * np.mean(first < k)) for k in ks}
