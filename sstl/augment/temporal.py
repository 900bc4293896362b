"""Temporal augmentations as index sampling (METHOD §2, paper Sec 3.1 and Table 4).

A training window holds ``window = T + e`` consecutive frames. Each view picks ``T`` of them:

1. playback-rate distortion: ``p ~ U(lo, hi)``; every frame is dropped with probability
   ``1 - 1/p`` (so the kept frames play ``p`` times faster), at most ``max_rate_drop`` of them;
   the view's rate label is ``s = p``;
2. temporal dropout: exactly ``n_drop`` of the remaining frames are removed, never two
   neighbours in the remaining sequence (so no gap grows by more than one frame at a time);
3. temporal crop: a random run of ``T`` consecutive remaining frames.

Only indices are computed here; the frames are gathered with one ``index_select``. Table 4's rows
are configurations: ``16+0 / 0 / no distortion`` is the identity, ``16+12 / 4 / distortion`` is
the paper's best setting.
"""

from __future__ import annotations

from typing import Any

import torch

from sstl.config import TemporalConfig

__all__ = ["TemporalTwoViews", "sample_indices", "two_views"]


def _check_setting(window: int, out_len: int, n_drop: int, max_rate_drop: int | None) -> None:
    """Raise ValueError naming the setting that makes sampling impossible.

    ``max_rate_drop``: the cap of step 1, None when there is no playback-rate distortion.
    """
    if out_len < 1:
        raise ValueError(f"out_len={out_len} is not allowed: the clip needs at least one frame")
    if n_drop < 0:
        raise ValueError(f"n_drop={n_drop} is not allowed: use an integer >= 0")
    if window < out_len + n_drop:
        raise ValueError(
            f"window={window} is too short for out_len={out_len} + n_drop={n_drop}: "
            "sample a window of at least out_len + n_drop frames (raise temporal.buffer) "
            "or lower n_drop"
        )
    cap = max_rate_drop or 0
    if cap < 0 or window - cap < out_len + n_drop:
        raise ValueError(
            f"max_rate_drop={max_rate_drop} is not allowed for window={window}, "
            f"out_len={out_len}, n_drop={n_drop}: use 0 <= max_rate_drop <= "
            f"window - out_len - n_drop = {window - out_len - n_drop}"
        )
    # The fewest frames that can remain after step 1 must still hold n_drop non-neighbours.
    if n_drop > 0 and window - cap < 2 * n_drop - 1:
        raise ValueError(
            f"n_drop={n_drop} frames cannot be non-adjacent in {window - cap} remaining "
            f"frames (window={window}, max_rate_drop={max_rate_drop}): they need at least "
            f"2 * n_drop - 1 = {2 * n_drop - 1}; lower n_drop"
        )


def _rate_keep(window: int, p: float, cap: int, generator: torch.Generator) -> torch.Tensor:
    """Bool mask ``[window]`` of frames that survive rate dropping (at most ``cap`` dropped)."""
    dropped = torch.rand(window, generator=generator) < 1.0 - 1.0 / p
    n = int(dropped.sum())
    if n > cap:
        # Keep a uniformly random subset of size ``cap`` of the drops; the rest stay in the clip.
        where = dropped.nonzero().squeeze(1)
        undrop = where[torch.randperm(n, generator=generator)[: n - cap]]
        dropped[undrop] = False
    return ~dropped


def _non_adjacent(n: int, k: int, generator: torch.Generator) -> torch.Tensor:
    """``k`` sorted positions in ``range(n)``, no two consecutive, uniform over all such sets.

    Bijection: sorted ``c_0 < ... < c_{k-1}`` drawn from ``range(n - k + 1)`` map to
    ``c_i + i``, which are pairwise >= 2 apart; every non-adjacent set arises exactly once.
    """
    chosen = torch.randperm(n - k + 1, generator=generator)[:k].sort().values
    return chosen + torch.arange(k)


def sample_indices(
    window: int,
    out_len: int,
    n_drop: int,
    rate_range: tuple[float, float] | None,
    max_rate_drop: int | None,
    generator: torch.Generator,
) -> tuple[torch.Tensor, float]:
    """Frame indices of one view into a window of ``window`` consecutive frames.

    Returns ``(indices [out_len] int64, strictly increasing, in [0, window); s)`` where ``s`` is
    the playback-rate label ``p`` (1.0 when ``rate_range`` is None: no distortion).
    ``max_rate_drop`` caps step 1; None means ``window - out_len - n_drop`` so that ``out_len``
    frames always remain after dropout. Raises ValueError naming the impossible setting.
    """
    cap = window - out_len - n_drop if max_rate_drop is None else max_rate_drop
    _check_setting(window, out_len, n_drop, None if rate_range is None else cap)
    frames = torch.arange(window)
    s = 1.0
    if rate_range is not None:
        lo, hi = rate_range
        if not 1.0 <= lo <= hi:
            raise ValueError(
                f"rate_range={rate_range} is not allowed: use 1 <= low <= high (p < 1 would "
                "need negative drop probabilities)"
            )
        s = lo + (hi - lo) * float(torch.rand((), generator=generator))
        frames = frames[_rate_keep(window, s, cap, generator)]
    if n_drop > 0:
        keep = torch.ones(len(frames), dtype=torch.bool)
        keep[_non_adjacent(len(frames), n_drop, generator)] = False
        frames = frames[keep]
    start = int(torch.randint(len(frames) - out_len + 1, (), generator=generator))
    return frames[start : start + out_len], s


def two_views(
    window_frames: torch.Tensor, cfg: TemporalConfig, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Two independent temporal views of one window.

    ``window_frames [W, H, W_, 3] uint8`` (W = cfg.window normally) ->
    ``(views [2, T, H, W_, 3] uint8, rates [2] float32)`` with T = cfg.clip_len.
    """
    gen = generator if generator is not None else torch.default_generator
    rate_range = cfg.rate_range if cfg.speed_distortion else None
    picks = [
        sample_indices(len(window_frames), cfg.clip_len, cfg.n_drop, rate_range, None, gen)
        for _ in range(2)
    ]
    index = torch.cat([idx for idx, _ in picks])
    views = window_frames.index_select(0, index).view(2, cfg.clip_len, *window_frames.shape[1:])
    rates = torch.tensor([s for _, s in picks], dtype=torch.float32)
    return views, rates


class TemporalTwoViews:
    """``ClipDataset`` transform: ``{"frames": [W, H, W_, 3] uint8, ...}`` -> two views.

    Returns a new dict with ``frames [2, T, H, W_, 3] uint8`` and ``rate [2] float32`` added; the
    other keys pass through. A ``torch.Generator`` under ``sample["generator"]`` drives the
    sampling (else torch's default generator) and is left out of the result, since the default
    collate function cannot batch generators. Picklable (holds only the config).
    """

    def __init__(self, cfg: TemporalConfig) -> None:
        self.cfg = cfg

    def __call__(self, sample: dict[str, Any]) -> dict[str, Any]:
        out = {k: v for k, v in sample.items() if k != "generator"}
        out["frames"], out["rate"] = two_views(sample["frames"], self.cfg, sample.get("generator"))
        return out

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.cfg!r})"
