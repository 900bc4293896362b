"""Retrieval at UCF101 split-1 size: the int8 shortlist, faiss and the torch fallback; time, memory.

Default size: 37,830 query clips (3,783 test videos x 10) against 95,370 gallery clips (9,537 train
videos x 10), 512-d random unit features, 101 classes. The three backends (faiss and torch exact
float32; int8: an int8 shortlist re-ranked in float32, checked) run in this one process on
the same inputs; for each the script prints the wall time of ``topk_accuracy`` and the peak RSS
above the RSS measured after the inputs were allocated (Linux: the peak is reset between runs via
/proc/self/clear_refs, so the second run is not masked by the first). It then checks that torch and
int8 return faiss's top-50 rankings on a sample of queries (an item may differ only where
the two similarities are within float32 rounding of each other) and the same accuracies.

``--collapsed`` times the worst case of the tie rule instead: every feature is the same vector, so
every query ties at the 50th place and is re-ranked exactly (the module docstring); the expected
top-1 is then the share of queries of gallery item 0's class.

    python bench/retrieval.py              # full size; target <= 15 s and <= 1 GiB extra
    python bench/retrieval.py --scale 0.1  # both sides 10x smaller, for a quick run
    python bench/retrieval.py --scale 0.1 --collapsed
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import time
from pathlib import Path

import numpy as np

from sstl.eval.retrieval import l2_normalize, nearest, topk_accuracy

MiB = 2**20
QUERIES, GALLERY, DIM, CLASSES = 37_830, 95_370, 512, 101
NEAR_TIE = 1e-5  # float32 rounding of a 512-d unit dot product stays far below this


def _status_kib(field: str) -> int:
    text = Path("/proc/self/status").read_text()
    return int(re.search(rf"{field}:\s+(\d+)", text).group(1))


def _reset_peak() -> bool:
    """Reset VmHWM (Linux >= 4.0); False where the kernel does not allow it."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _measure(fn):
    """Run ``fn()``; return (result, wall s, CPU s, peak RSS above the RSS before the call, MiB).

    CPU seconds are reported too because the wall time depends on what else the machine runs.
    """
    exact = _reset_peak()
    base = _status_kib("VmRSS")
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    peak = _status_kib("VmHWM")
    if not exact:
        print("warning: could not reset the peak RSS; the second backend's peak is an upper bound")
    return out, wall, cpu, (peak - base) / 1024


def _unit(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    x = rng.standard_normal((n, dim), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def check_neighbours(
    query: np.ndarray, gallery: np.ndarray, k: int, sample: int, other: str = "torch"
) -> int:
    """faiss's and ``other``'s top-k rankings on ``sample`` queries; returns how many differ
    (only where two items are within rounding of each other, else an AssertionError)."""
    rng = np.random.default_rng(1)
    rows = rng.choice(len(query), size=min(sample, len(query)), replace=False)
    q = np.ascontiguousarray(query[rows])
    sf, i_f = nearest(q, gallery, k, "faiss")
    st, i_t = nearest(q, gallery, k, other)
    assert np.allclose(sf, st, atol=NEAR_TIE), "the backends' similarities disagree"
    differ = 0
    for r in np.flatnonzero((i_f != i_t).any(axis=1)):
        differ += 1
        pos = np.flatnonzero(i_f[r] != i_t[r])
        sims = gallery[np.union1d(i_f[r, pos], i_t[r, pos])].astype(np.float64) @ q[r]
        assert np.ptp(sims) <= NEAR_TIE, (
            f"query {rows[r]}: rankings differ beyond a near-tie at places {pos} (sims {sims})"
        )
    return differ


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the full size")
    parser.add_argument("--dim", type=int, default=DIM)
    parser.add_argument("--sample", type=int, default=256, help="queries for the agreement check")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--collapsed", action="store_true", help="every feature the same vector")
    args = parser.parse_args(argv)
    # the int8 backend logs how many queries its check sent to the exact search
    logging.basicConfig(format="%(name)s: %(message)s")
    logging.getLogger("sstl").setLevel(logging.INFO)

    nq, ng = max(1, round(QUERIES * args.scale)), max(1, round(GALLERY * args.scale))
    rng = np.random.default_rng(args.seed)
    query, gallery = _unit(rng, nq, args.dim), _unit(rng, ng, args.dim)
    if args.collapsed:
        query[:], gallery[:] = gallery[0], gallery[0]
    ql, gl = rng.integers(0, CLASSES, nq), rng.integers(0, CLASSES, ng)
    assert l2_normalize(gallery) is gallery  # unit inputs are searched in place, no copy
    print(f"queries {nq:,} x gallery {ng:,} x {args.dim}-d, {CLASSES} classes")
    print(f"inputs: {(query.nbytes + gallery.nbytes) / MiB:.0f} MiB")

    results = {}
    walls = {}
    for backend in ("int8", "faiss", "torch"):
        acc, wall, cpu, extra = _measure(
            lambda b=backend: topk_accuracy(query, ql, gallery, gl, backend=b)
        )
        results[backend], walls[backend] = acc, wall
        tops = " ".join(f"top{k}={v:.2f}" for k, v in acc.items())
        print(
            f"{backend:>5}: {wall:6.1f} s wall, {cpu:6.1f} s CPU ({os.cpu_count()} cores), "
            f"peak extra RSS {extra:6.1f} MiB  ({tops})"
        )

    for backend in ("torch", "int8"):
        print(f"{backend} vs faiss: {walls['faiss'] / walls[backend]:.2f}x the speed")
        differ = check_neighbours(query, gallery, 50, args.sample, backend)
        print(
            f"top-50 rankings {backend} vs faiss: {args.sample - differ}/{args.sample} identical, "
            "the rest differ only in near-ties"
        )
    if args.collapsed:  # every item ties: the ranking is the gallery order
        share = 100.0 * np.mean(ql == gl[0])
        assert all(acc[1] == share for acc in results.values()), f"top1 != {share:.2f}"
        print(f"collapsed: top1 = {share:.2f}% = the share of queries of gallery item 0's class")
    for backend in ("torch", "int8"):
        for k in results["faiss"]:
            gap = abs(results["faiss"][k] - results[backend][k])
            assert gap <= 100.0 * 3 / nq, f"top{k}: {backend} is {gap:.4f} points from faiss"
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
