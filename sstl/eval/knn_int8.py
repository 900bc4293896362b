"""The ``int8`` retrieval backend: an int8 matmul shortlists, float32 re-ranks, a margin check
hands every query it cannot vouch for to the exact search.

Why: with AVX512-VNNI or AMX an int8 matmul runs about 4x float32 (and 2x bfloat16) on the same
cores, and it accumulates in int32 exactly, so its only error is the rounding of the inputs to
8 bits. At UCF101 split 1's full size (37,830 x 95,370 x 512, 3.7 TFLOP in float32) the float32
search is bound by the CPU's float32 peak (faiss: 25 s on 2 cores); this one takes 10-11 s
(``bench/retrieval.py``).

For each chunk of ``rows`` queries:

1. Approximate similarities to every gallery item: int8 query rows (one scale per row, its max |x|
   / 127) times int8 gallery rows -> int32 ``[r, G]``. The gallery is sorted by each row's max |x|
   and quantised with one scale per block of :data:`BLOCK` consecutive sorted rows, so a block's
   scale is within a hair of each of its rows' own, and within a block the int32 order is the
   approximate order.
2. The ``m = k + EXTRA`` best items by approximate similarity, exactly: the max of each block times
   its scale, the m best blocks (they hold the m best items), then the m best items in them.
3. Their float32 similarities (the rows gathered, one dot product each), ranked by the tie rule.
4. The check. An item of block b left out of the shortlist has an approximate similarity of at
   most ``min(a_m, key_b)`` (``a_m`` the m-th best, ``key_b`` the block's best), so its exact one
   is at most that plus ``E_b``, a bound on its int8 error; if the shortlist's k-th best exact
   similarity is above every block's ``min(a_m, key_b) + E_b``, nothing left out can enter the top
   k, and a tie at the k-th place lies wholly inside the shortlist, where the rule is applied.
   The int8 error of a pair is a sum of D small roundings, near-Gaussian with a spread of
   ``sqrt((s_g |q|)^2 + (s_q |g|)^2)`` (``s`` the scales; std ~5e-4 on 512-d unit rows).
   ``E_b`` is :data:`MARGIN` times the largest error seen on the chunk's shortlisted pairs, in
   units of their spreads (the largest of ~58,000 sits near 4 std, so E near 12), times the
   spread of block b's scale and largest norm: blocks of spiky rows (large scales) get the
   larger bound they need. Queries that fail (dense neighbourhoods, near-duplicates, collapsed
   features) are searched exactly by :func:`sstl.eval.knn.search_torch`.
   On random unit features at full size 1.4% of the queries fail it (~0.6 s); the accuracies
   equal faiss's, the rankings too up to float32 near-ties (the re-rank sums in another order).
"""

from __future__ import annotations

import logging
from typing import NamedTuple

import numpy as np
import torch

from sstl.eval.knn import rank, search_torch

log = logging.getLogger(__name__)

BLOCK = 64  # gallery rows per scale and per block of the two-level top-m selection
EXTRA = 64  # shortlist depth beyond k
MARGIN = 3.0  # E_b = MARGIN x the largest int8 error seen in the chunk (in spreads) x b's spread
RERANK = 16  # queries whose shortlisted rows are gathered at once (~3.7 MiB at 512-d: in cache)
_MAX_DIM = (2**31 - 1) // 127**2  # int32 accumulation is exact up to this many dimensions
_FLOOR = 1e-6  # E is at least this: float32 rounding of the re-ranked similarities
_TINY = 1e-30  # scale of an all-zero row: its codes are zero whatever the scale


class Int8Gallery(NamedTuple):
    codes: torch.Tensor  # (Gp, Dp) int8: rows in ``order``, zero-padded to whole blocks and Dp
    scale: torch.Tensor  # (Gp // BLOCK,) float32: codes x scale ~ the block's float32 rows
    order: torch.Tensor  # (G,) int64: sorted position -> gallery index
    norm: torch.Tensor  # (Gp // BLOCK,) float32: the largest row norm of each block
    row_norm: torch.Tensor  # (G,) float32: each row's norm, in gallery order


def _padded_dim(d: int) -> int:
    # torch 2.14's CPU int8 matmul returns garbage for a 1-column inner dimension; zero columns
    # change no dot product, so pad to a multiple of 4
    return d + (-d % 4)


def quantize_gallery(gallery: np.ndarray, chunk: int = 256 * BLOCK) -> Int8Gallery:
    """``gallery [G, D]`` float32 -> its int8 codes, block scales and sort order (module doc).

    Quantised ``chunk`` rows at a time, so the only large allocation is the codes (G x D bytes).
    """
    g = torch.from_numpy(gallery)
    n, d = g.shape
    peak = torch.linalg.vector_norm(g, ord=float("inf"), dim=1)  # (G,) max |x|, no copy of g
    row_norm = torch.linalg.vector_norm(g, dim=1)
    order = peak.argsort()
    n_blocks = -(-n // BLOCK)
    codes = torch.zeros(n_blocks * BLOCK, _padded_dim(d), dtype=torch.int8)
    # ascending order: a block's largest |x| is its last row's
    last = torch.clamp(torch.arange(1, n_blocks + 1) * BLOCK, max=n) - 1
    scale = peak[order[last]].clamp_min(_TINY) / 127
    row_scale = scale.repeat_interleave(BLOCK)[:n]
    for s in range(0, n, chunk):
        rows = g[order[s : s + chunk]] / row_scale[s : s + chunk, None]  # |x| <= 127
        codes[s : s + len(rows), :d] = torch.round(rows).to(torch.int8)
    norm = torch.zeros(n_blocks * BLOCK)
    norm[:n] = row_norm[order]
    return Int8Gallery(codes, scale, order, norm.view(n_blocks, BLOCK).amax(dim=1), row_norm)


def _spread(
    g_scale: torch.Tensor, g_norm: torch.Tensor, q_scale: torch.Tensor, q_norm: torch.Tensor
) -> torch.Tensor:
    """The int8 error's scale for rows of these scales and norms (broadcast): the rounding
    errors, uniform in +-scale/2, meet the other row's entries."""
    return torch.sqrt((g_scale * q_norm) ** 2 + (q_scale * g_norm) ** 2)


def search_int8(
    query: np.ndarray, gallery: np.ndarray, k: int, rows: int = 512, stats: dict | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``query [Q, D]``, ``gallery [G, D]`` float32 -> ``(sims [Q, k], index [Q, k])``, the float32
    ranking by (-similarity, gallery index); ``k <= G``. ``stats``, if given, gets ``"exact"``:
    how many queries the check sent to the exact search."""
    if gallery.shape[1] > _MAX_DIM:  # int32 could overflow: no shortlist
        return search_torch(query, gallery, k)
    sims, idx, redo = _search_chunks(query, gallery, k, max(1, min(rows, len(query))))
    log.info(
        "int8 search: %d of %d queries failed the check, searched exactly", redo.size, len(query)
    )
    if redo.size:  # after the chunks' buffers are freed
        sims[redo], idx[redo] = search_torch(np.ascontiguousarray(query[redo]), gallery, k)
    if stats is not None:
        stats["exact"] = int(redo.size)
    return sims, idx


def _search_chunks(
    query: np.ndarray, gallery: np.ndarray, k: int, rows: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Steps 1-4 of the module docstring, ``rows`` queries at a time -> (sims [Q, k],
    index [Q, k], the queries that failed the check)."""
    n_gal, dim = gallery.shape
    m = min(n_gal, k + EXTRA)
    ig = quantize_gallery(gallery)
    g32 = torch.from_numpy(gallery)
    scores = torch.empty(rows, len(ig.codes), dtype=torch.int32)  # ~195 MiB at full size
    q8 = torch.zeros(rows, ig.codes.shape[1], dtype=torch.int8)
    gathered = torch.empty(RERANK * m, dim)
    sims = np.empty((len(query), k), dtype=np.float32)
    idx = np.empty((len(query), k), dtype=np.int64)
    unsafe = []
    for start in range(0, len(query), rows):
        q32 = torch.from_numpy(query[start : start + rows])
        r = len(q32)
        q_scale = q32.abs().amax(dim=1).clamp_min(_TINY)[:, None] / 127  # (r, 1)
        q8[:r, :dim] = torch.round(q32 / q_scale).to(torch.int8)
        s = torch._int_mm(q8[:r], ig.codes.T, out=scores[:r])  # (r, Gp) int32, exact
        s[:, n_gal:] = torch.iinfo(torch.int32).min  # padding rows never enter the shortlist
        key, pos, approx = _shortlist(s, ig.scale, m)
        approx *= q_scale
        cand = ig.order[pos]  # (r, m) gallery indices
        exact = torch.empty(r, m)
        for c0 in range(0, r, RERANK):  # gather and dot a few queries' rows at a time: in cache
            c = cand[c0 : c0 + RERANK]
            x = torch.index_select(g32, 0, c.flatten(), out=gathered[: c.numel()])
            x = x.view(len(c), m, dim)
            torch.linalg.vecdot(x, q32[c0 : c0 + len(c), None, :], out=exact[c0 : c0 + len(c)])
        top_s, top_i = rank(exact.numpy(), cand.numpy())
        if m < n_gal:  # with the whole gallery kept the ranking is exact
            q_norm = torch.linalg.vector_norm(q32, dim=1)[:, None]
            seen = _spread(ig.scale[pos // BLOCK], ig.row_norm[cand], q_scale, q_norm)  # (r, m)
            rho = float(((exact - approx).abs() / seen.clamp_min(_TINY)).max())
            reach = torch.minimum(key * q_scale, approx.amin(dim=1, keepdim=True))
            reach += MARGIN * rho * _spread(ig.scale, ig.norm, q_scale, q_norm)  # (r, blocks)
            bound = reach.amax(dim=1) + _FLOOR
            unsafe.append(start + np.flatnonzero(top_s[:, k - 1] <= bound.numpy()))
        sims[start : start + r], idx[start : start + r] = top_s[:, :k], top_i[:, :k]
    redo = np.concatenate(unsafe) if unsafe else np.empty(0, dtype=np.int64)
    return sims, idx, redo


def _shortlist(
    scores: torch.Tensor, scale: torch.Tensor, m: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Step 2: ``scores [r, Gp]`` int32 in sorted gallery order, ``scale [Gp / BLOCK]`` ->
    ``key [r, blocks]`` (each block's best), ``pos [r, m]`` (sorted positions of the m best items)
    and ``approx [r, m]`` (their similarities), all before the query's scale."""
    r, n_blocks = len(scores), len(scale)
    blocks = scores.view(r, n_blocks, BLOCK)
    key = blocks.amax(dim=2) * scale  # (r, n_blocks) float32
    nb = min(n_blocks, m)  # the m best items lie in the m best blocks
    best = key.topk(nb, dim=1, sorted=False).indices  # (r, nb)
    items = blocks.gather(1, best[:, :, None].expand(-1, -1, BLOCK))  # (r, nb, BLOCK) int32
    top = (items * scale[best][:, :, None]).flatten(1).topk(m, dim=1, sorted=False)
    pos = (best[:, :, None] * BLOCK + torch.arange(BLOCK)).flatten(1).gather(1, top.indices)
    return key, pos, top.values
