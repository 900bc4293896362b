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
exactly the stable rule applied to the similarities the backend computed. The backends round the
same dot product differently (~1e-7: different summation orders), so where two items are within
rounding of each other two backends may order them differently; only degenerate features
(near-duplicates) have such near-ties, and there each backend still applies the rule to its own
values. A collapsed model thus scores what its first gallery items' classes give (about chance),
never more: an earlier tie-inclusive rule ("hit if ANY same-class item is within 1e-5 of the
k-th similarity") counted nearly every query of such a model as a hit.

Scale. UCF101 split 1 at full size is 37,830 queries x 95,370 gallery clips x 512-d; exact float32
search is 2 * Q * G * d = 3.7 TFLOP. Only ``max(ks) + 1`` neighbours per query are kept, never
the full similarity matrix. Backends (times: ``bench/retrieval.py`` at full size, 2 idle AVX-512
cores):
- ``backend="int8"`` (default, :mod:`sstl.eval.knn_int8`): an int8 matmul (exact int32
  accumulation) shortlists ``k + 64`` items per query, their float32 similarities are ranked, and
  a margin check sends every query whose top k the shortlist cannot vouch for to the torch search.
  10-11 s, +411 MiB; the same accuracies as faiss, and its rankings up to float32 near-ties.
- ``backend="faiss"``: ``faiss.knn`` with inner product (the brute-force search ``IndexFlatIP``
  runs, without copying the gallery into an index), blocked sgemm + heaps inside faiss: at the
  CPU's float32 peak, 22-25 s, +46 MiB.
- ``backend="torch"``: chunked ``query @ gallery.T`` + ``topk``, at most 256 MiB of similarities
  at a time: 42-45 s, +517 MiB.
Inputs that are already unit-norm float32 are used in place; others get one normalised copy.
Boundary ties cost one more torch pass over the tied queries: nothing on real features, about
one more search when every query is tied (collapsed features).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import torch

from sstl.eval.knn import search_faiss, search_torch
from sstl.eval.knn_int8 import search_int8

Backend = Literal["int8", "faiss", "torch"]
DEFAULT_KS = (1, 5, 10, 20, 50)


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


def nearest(
    query: Any, gallery: Any, k: int, backend: Backend = "int8"
) -> tuple[np.ndarray, np.ndarray]:
    """The ``m = min(k, G)`` first items of each query's ranking (module docstring).

    Brute-force inner product (cosine when rows are unit vectors): ``query [Q, D]``,
    ``gallery [G, D]`` -> ``(sims [Q, m] float32, index [Q, m] int64)``, ranked by
    (-similarity, gallery index): equal similarities in gallery order, also at the m-th place.
    """
    query, gallery = _f32(query, "query", 2), _f32(gallery, "gallery", 2)
    k = min(k, len(gallery))
    if backend == "int8":
        return search_int8(query, gallery, k)
    if backend == "faiss":
        return search_faiss(query, gallery, k)
    if backend == "torch":
        return search_torch(query, gallery, k)
    raise ValueError(f"backend = {backend!r} is not allowed: 'int8', 'faiss' or 'torch'")


def topk_accuracy(
    query: Any,
    query_labels: Any,
    gallery: Any,
    gallery_labels: Any,
    ks: Sequence[int] = DEFAULT_KS,
    backend: Backend = "int8",
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
