"""Pure nearest-neighbour retrieval top-k accuracy (paper Sec 4.4), plus the peers' protocols.

Every query (a test clip) searches the whole gallery (all train clips) by cosine similarity; a query
is a hit at k if its class is among the classes of its k nearest gallery items.

Ties. Two gallery items can be exactly as similar to a query (duplicate clips, duplicate videos),
and which of them a search returns first is an implementation detail of faiss or torch. So the
rule here is tie-inclusive and independent of the search order: with ``s_k`` the k-th best
similarity of the query, it is a hit at k if ANY gallery item of its class has similarity
``>= s_k - tie_tol``. Equivalently: ``best_same_class >= s_k - tie_tol``. ``tie_tol`` (1e-5) absorbs
float32 rounding between the two computations (the k-th similarity comes from the full search, the
best same-class similarity from a per-class search, which round differently; for unit vectors the
difference is ~1e-7 in practice, its worst-case bound ``d * 2**-24``). Without ties the rule is
exactly "the class is among the labels of the k nearest". With k larger than the gallery, all of it
counts.

Scale. UCF101 split 1 at full size is 37,830 queries x 95,370 gallery clips x 512-d. Only
``max(ks)`` neighbours per query are kept, never the full similarity matrix:
- ``backend="faiss"``: ``faiss.knn`` with inner product (the brute-force search ``IndexFlatIP``
  runs, without copying the gallery into an index), blocked sgemm + heaps inside faiss;
- ``backend="torch"``: chunked ``query @ gallery.T`` + ``topk``, at most 256 MiB of similarities
  at a time.
Inputs that are already unit-norm float32 are used in place; others get one normalised copy. The
search is exact float32, 2 * Q * G * d = 3.7 TFLOP at full size: compute-bound, ~57 CPU-seconds
with faiss on a 2-core AVX-512 CPU, +55 MiB (``bench/retrieval.py``). The per-class search for
the tie rule costs 1/num_classes of that.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import torch

Backend = Literal["faiss", "torch"]
TIE_TOL = 1e-5
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


def _search_faiss(query: np.ndarray, gallery: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    import faiss  # imported here: only this backend needs it

    sims, idx = faiss.knn(query, gallery, k, metric=faiss.METRIC_INNER_PRODUCT)
    return sims, idx.astype(np.int64, copy=False)


def _search_torch(
    query: np.ndarray, gallery: np.ndarray, k: int, chunk_bytes: int = _CHUNK_BYTES
) -> tuple[np.ndarray, np.ndarray]:
    g = torch.from_numpy(gallery)  # shares memory
    rows = max(1, chunk_bytes // (4 * len(gallery)))
    sims = np.empty((len(query), k), dtype=np.float32)
    idx = np.empty((len(query), k), dtype=np.int64)
    for start in range(0, len(query), rows):
        top = (torch.from_numpy(query[start : start + rows]) @ g.T).topk(k, dim=1)  # (rows, G)
        sims[start : start + rows], idx[start : start + rows] = top.values, top.indices
    return sims, idx


def nearest(
    query: Any, gallery: Any, k: int, backend: Backend = "faiss"
) -> tuple[np.ndarray, np.ndarray]:
    """Brute-force inner-product search (cosine when rows are unit vectors).

    ``query [Q, D]``, ``gallery [G, D]`` -> ``(sims [Q, m] float32, index [Q, m] int64)`` with
    ``m = min(k, G)``, best first. Order among exactly equal similarities is the backend's.
    """
    query, gallery = _f32(query, "query", 2), _f32(gallery, "gallery", 2)
    k = min(k, len(gallery))
    if backend == "faiss":
        return _search_faiss(query, gallery, k)
    if backend == "torch":
        return _search_torch(query, gallery, k)
    raise ValueError(f"backend = {backend!r} is not allowed: 'faiss' or 'torch'")


def _best_same_class(
    query: np.ndarray, qlab: np.ndarray, gallery: np.ndarray, glab: np.ndarray, backend: Backend
) -> np.ndarray:
    """``[Q]`` best similarity between each query and a gallery item of its class (-inf: none)."""
    best = np.full(len(query), -np.inf, dtype=np.float32)
    for c in np.unique(qlab):
        gi = np.flatnonzero(glab == c)
        if gi.size:
            qi = np.flatnonzero(qlab == c)
            best[qi] = nearest(query[qi], gallery[gi], 1, backend)[0][:, 0]
    return best


def topk_accuracy(
    query: Any,
    query_labels: Any,
    gallery: Any,
    gallery_labels: Any,
    ks: Sequence[int] = DEFAULT_KS,
    backend: Backend = "faiss",
    tie_tol: float = TIE_TOL,
) -> dict[int, float]:
    """Top-k retrieval accuracy in percent, cosine similarity, tie-inclusive (module docstring).

    ``query [Q, D]``, ``query_labels [Q]``, ``gallery [G, D]``, ``gallery_labels [G]`` (numpy
    arrays or tensors) -> ``{k: percent of queries that are a hit at k}``.
    """
    query, gallery = _f32(query, "query", 2), _f32(gallery, "gallery", 2)
    if query.shape[1] != gallery.shape[1]:
        raise ValueError(
            f"query dim {query.shape[1]} != gallery dim {gallery.shape[1]}: "
            "both must come from the same layer"
        )
    if len(query) == 0 or len(gallery) == 0:
        raise ValueError(f"empty retrieval: {len(query)} queries, {len(gallery)} gallery items")
    ks = tuple(int(k) for k in ks)
    if not ks or min(ks) < 1:
        raise ValueError(f"ks = {ks!r} is not allowed: a non-empty list of integers >= 1")
    qlab = _labels(query_labels, len(query), "query_labels")
    glab = _labels(gallery_labels, len(gallery), "gallery_labels")
    query, gallery = l2_normalize(query), l2_normalize(gallery)

    sims, _ = nearest(query, gallery, max(ks), backend)  # (Q, m), m = min(max k, G)
    best = _best_same_class(query, qlab, gallery, glab, backend)  # (Q,)
    m = sims.shape[1]
    return {k: float(100.0 * np.mean(best >= sims[:, min(k, m) - 1] - tie_tol)) for k in ks}
