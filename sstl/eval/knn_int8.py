"""The ``int8`` retrieval backend: an int8 matmul shortlists, float32 re-ranks, a margin check
hands every query it cannot vouch for to the exact search.

Why: with AVX512-VNNI or AMX an int8 matmul runs about 4x float32 (and 2x bfloat16) on the same
cores, and it accumulates in int32 exactly, so its only error is the rounding of the inputs to
8 bits. At UCF101 split 1's full size (37,830 x 95,370 x 512, 3.7 TFLOP in float32) the float32
search is bound by the CPU's float32 peak (faiss: 24 s on 2 cores); this one takes about 11 s.

For each chunk of ``rows`` queries:

1. Approximate similarities to every gallery item: int8 query rows (one scale per row, its max |x|
   / 127) times int8 gallery rows -> int32 ``[r, G]``. The gallery is sorted by each row's max |x|
   and quantised with one scale per block of :data:`BLOCK` consecutive sorted rows, so a block's
   scale is within a hair of each of its rows' own, and within a block the int32 order is the
   approximate order.
2. The ``m = k + EXTRA`` best items by approximate similarity, exactly: the max of each block times
   its scale, the m best blocks (they hold the m best items), then the m best items in them.
3. Their float32 similarities (the rows gathered, one dot product each), ranked by the tie rule.
4. The check. An item left out of the shortlist has an approximate similarity of at most ``a_m``
   (the m-th best), so its exact one is at most ``a_m + E`` where E bounds the int8 error; if the
   shortlist's k-th best exact similarity is above ``a_m + E`` nothing left out can enter the top
   k, and a tie at the k-th place lies wholly inside the shortlist, where the rule is applied. E is
   :data:`MARGIN` times the largest |exact - approximate| seen on the chunk's shortlisted pairs:
   the error is a sum of D small roundings, near-Gaussian (std ~5e-4 on 512-d unit rows), so the
   largest of ~58,000 sits near 4 std and E near 12. Queries that fail (dense neighbourhoods,
   near-duplicates, collapsed features) are searched exactly by :func:`sstl.eval.knn.search_torch`.
   On random unit features the check passes for every query; the results equal faiss's.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from sstl.eval.knn import rank, search_torch

BLOCK = 64  # gallery rows per scale and per block of the two-level top-m selection
EXTRA = 64  # shortlist depth beyond k
MARGIN = 3.0  # E = MARGIN x the largest int8 error seen in the chunk
RERANK = 16  # queries whose shortlisted rows are gathered at once (~3.7 MiB at 512-d: in cache)
_MAX_DIM = (2**31 - 1) // 127**2  # int32 accumulation is exact up to this many dimensions
_FLOOR = 1e-6  # E is at least this: float32 rounding of the re-ranked similarities
_TINY = 1e-30  # scale of an all-zero row: its codes are zero whatever the scale


class Int8Gallery(NamedTuple):
    codes: torch.Tensor  # (Gp, Dp) int8: rows in ``order``, zero-padded to whole blocks and Dp
    scale: torch.Tensor  # (Gp // BLOCK,) float32: codes x scale ~ the block's float32 rows
    order: torch.Tensor  # (G,) int64: sorted position -> gallery index


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
    peak = g.abs().amax(dim=1)  # (G,)
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
    return Int8Gallery(codes, scale, order)


def search_int8(
    query: np.ndarray, gallery: np.ndarray, k: int, rows: int = 512, stats: dict | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``query [Q, D]``, ``gallery [G, D]`` float32 -> ``(sims [Q, k], index [Q, k])``, the float32
    ranking by (-similarity, gallery index); ``k <= G``. ``stats``, if given, gets ``"exact"``:
    how many queries the check sent to the exact search."""
    n_gal, dim = gallery.shape
    if dim > _MAX_DIM:  # int32 could overflow: no shortlist
        return search_torch(query, gallery, k)
    m = min(n_gal, k + EXTRA)
    ig = quantize_gallery(gallery)
    g32 = torch.from_numpy(gallery)
    n_blocks = len(ig.scale)
    nb = min(n_blocks, m)  # blocks kept: the m best items lie in the m best blocks
    rows = max(1, min(rows, len(query)))
    scores = torch.empty(rows, len(ig.codes), dtype=torch.int32)  # ~195 MiB at full size
    block_max = torch.empty(rows, n_blocks, dtype=torch.int32)
    q8 = torch.zeros(rows, ig.codes.shape[1], dtype=torch.int8)
    gathered = torch.empty(RERANK * m, dim)
    lane = torch.arange(BLOCK)
    sims = np.empty((len(query), k), dtype=np.float32)
    idx = np.empty((len(query), k), dtype=np.int64)
    unsafe = []
    for start in range(0, len(query), rows):
        q32 = torch.from_numpy(query[start : start + rows])
        r = len(q32)
        q_scale = q32.abs().amax(dim=1).clamp_min(_TINY) / 127  # (r,)
        q8[:r, :dim] = torch.round(q32 / q_scale[:, None]).to(torch.int8)
        s = torch._int_mm(q8[:r], ig.codes.T, out=scores[:r])  # (r, Gp) int32, exact
        s[:, n_gal:] = torch.iinfo(torch.int32).min  # padding rows never enter the shortlist
        blocks = s.view(r, n_blocks, BLOCK)
        torch.amax(blocks, dim=2, out=block_max[:r])
        best = (block_max[:r] * ig.scale).topk(nb, dim=1, sorted=False).indices  # (r, nb)
        items = blocks.gather(1, best[:, :, None].expand(-1, -1, BLOCK))  # (r, nb, BLOCK)
        top = (items * ig.scale[best][:, :, None]).flatten(1).topk(m, dim=1, sorted=False)
        pos = (best[:, :, None] * BLOCK + lane).flatten(1).gather(1, top.indices)  # (r, m)
        cand = ig.order[pos]  # gallery indices
        approx = top.values * q_scale[:, None]  # (r, m)

        exact = torch.empty(r, m)
        for c0 in range(0, r, RERANK):
            c = cand[c0 : c0 + RERANK]
            x = torch.index_select(g32, 0, c.flatten(), out=gathered[: c.numel()])
            x = x.view(len(c), m, dim)
            torch.linalg.vecdot(x, q32[c0 : c0 + len(c), None, :], out=exact[c0 : c0 + len(c)])
        top_s, top_i = rank(exact.numpy(), cand.numpy())
        if m < n_gal:  # the check (module docstring); with the whole gallery kept it is exact
            bound = approx.amin(dim=1) + max(MARGIN * float((exact - approx).abs().max()), _FLOOR)
            unsafe.append(start + np.flatnonzero(top_s[:, k - 1] <= bound.numpy()))
        sims[start : start + r], idx[start : start + r] = top_s[:, :k], top_i[:, :k]

    redo = np.concatenate(unsafe) if unsafe else np.empty(0, dtype=np.int64)
    if redo.size:
        sims[redo], idx[redo] = search_torch(np.ascontiguousarray(query[redo]), gallery, k)
    if stats is not None:
        stats["exact"] = int(redo.size)
    return sims, idx
