"""Temporal augmentations as index sampling (METHOD §2, Table 4)."""

from __future__ import annotations

import itertools
import pickle
from collections import Counter

import pytest
import torch

from sstl.augment.temporal import TemporalTwoViews, _rate_keep, sample_indices, two_views
from sstl.config import TemporalConfig

RATE = (1.0, 1.25)
# Table 4 rows as (buffer e, n_drop, speed distortion) at T = 16.
TABLE4 = [(0, 0, False), (8, 0, False), (12, 4, False), (16, 6, False), (12, 4, True)]


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize(("buffer", "n_drop", "distort"), TABLE4)
def test_table4_rows_give_valid_indices(buffer: int, n_drop: int, distort: bool) -> None:
    g = gen()
    for _ in range(200):
        idx, s = sample_indices(16 + buffer, 16, n_drop, RATE if distort else None, None, g)
        assert idx.dtype == torch.int64 and idx.shape == (16,)
        assert bool((idx[1:] > idx[:-1]).all()), idx
        assert int(idx[0]) >= 0 and int(idx[-1]) < 16 + buffer
        assert RATE[0] <= s <= RATE[1] if distort else s == 1.0


def test_no_augmentation_is_identity() -> None:
    idx, s = sample_indices(16, 16, 0, None, None, gen())
    assert torch.equal(idx, torch.arange(16)) and s == 1.0


def test_crop_only_is_a_consecutive_run() -> None:
    starts = set()
    for seed in range(100):
        idx, _ = sample_indices(24, 16, 0, None, None, gen(seed))
        assert torch.equal(idx, torch.arange(16) + idx[0])
        starts.add(int(idx[0]))
    assert starts == set(range(9))  # every start 0..8 occurs


def test_dropped_frames_are_never_adjacent_and_uniform() -> None:
    # window = out_len + n_drop with no distortion: the dropped set is exactly what is missing.
    g = gen()
    for _ in range(300):
        idx, _ = sample_indices(20, 16, 4, None, None, g)
        dropped = sorted(set(range(20)) - set(idx.tolist()))
        assert len(dropped) == 4
        assert all(b - a >= 2 for a, b in itertools.pairwise(dropped)), dropped
    # 5 frames, 2 dropped: the 6 non-adjacent pairs come up equally often.
    counts = Counter(
        tuple(sorted(set(range(5)) - set(sample_indices(5, 3, 2, None, None, g)[0].tolist())))
        for _ in range(3000)
    )
    assert set(counts) == {(0, 2), (0, 3), (0, 4), (1, 3), (1, 4), (2, 4)}
    assert min(counts.values()) > 400 and max(counts.values()) < 600, counts


def test_rate_drop_fraction_matches_one_minus_one_over_p() -> None:
    g = gen()
    for p in (1.1, 1.25, 2.0):
        drops = [int((~_rate_keep(200, p, 200, g)).sum()) for _ in range(300)]
        assert sum(drops) / len(drops) == pytest.approx(200 * (1 - 1 / p), rel=0.05)


def test_rate_distortion_stretches_the_clip_span() -> None:
    # Uncapped (80 expected drops < cap 200): a view's span grows by the factor p it reports.
    g = gen()
    gaps, rates = [], []
    for _ in range(200):
        idx, s = sample_indices(400, 200, 0, (1.0, 2.0), None, g)
        span = int(idx[-1] - idx[0]) + 1
        gaps.append((span - 200) / span)
        rates.append(s)
    gaps_t, rates_t = torch.tensor(gaps), torch.tensor(rates)
    assert float((gaps_t - (1 - 1 / rates_t)).abs().mean()) < 0.03
    assert float(torch.corrcoef(torch.stack([gaps_t, rates_t]))[0, 1]) > 0.9


def test_rate_drop_cap_is_respected() -> None:
    g = gen()
    # p = 3 would drop two thirds of the frames; the explicit cap allows only 2.
    spans = []
    for _ in range(100):
        idx, s = sample_indices(28, 16, 0, (3.0, 3.0), 2, g)
        spans.append(int(idx[-1] - idx[0]) + 1 - 16)
        assert s == 3.0
    assert max(spans) == 2
    # The default cap leaves exactly out_len + n_drop frames: 28 - 16 - 4 = 8 rate drops.
    for _ in range(50):
        idx, _ = sample_indices(28, 16, 4, (3.0, 3.0), None, g)
        assert len(idx) == 16 and bool((idx[1:] > idx[:-1]).all())


def test_dropout_without_distortion_only_needs_room_in_the_window() -> None:
    # 8 non-adjacent drops need 15 frames: fine in a 20-frame window without rate drops.
    idx, _ = sample_indices(20, 12, 8, None, None, gen())
    assert len(idx) == 12
    with pytest.raises(ValueError, match="n_drop=8"):  # rate drops may leave only 12 frames
        sample_indices(20, 4, 8, (2.0, 2.0), 8, gen())


def test_seeded_generator_is_deterministic() -> None:
    a = [sample_indices(28, 16, 4, RATE, None, gen(7)) for _ in range(3)]
    assert all(torch.equal(a[0][0], x[0]) and a[0][1] == x[1] for x in a)
    others = {tuple(sample_indices(28, 16, 4, RATE, None, gen(s))[0].tolist()) for s in range(20)}
    assert len(others) > 10


@pytest.mark.parametrize(
    ("args", "name"),
    [
        ((10, 16, 0, None, None), "window=10"),
        ((18, 16, 4, None, None), "window=18"),
        ((5, 1, 4, None, None), "n_drop=4"),
        ((28, 16, 4, RATE, 9), "max_rate_drop=9"),
        ((28, 16, 4, (0.0, 1.0), None), "rate_range"),
        ((16, 0, 0, None, None), "out_len=0"),
    ],
)
def test_impossible_settings_name_the_setting(args: tuple, name: str) -> None:
    with pytest.raises(ValueError, match=name):
        sample_indices(*args, gen())


def numbered_window(n: int) -> torch.Tensor:
    """``[n, 4, 5, 3]`` uint8 frames whose pixels hold their frame index."""
    return torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1).expand(n, 4, 5, 3).contiguous()


def test_two_views_are_independent_views_of_one_window() -> None:
    cfg = TemporalConfig()  # 16 + 12, 4 dropped, distortion on
    g = gen()
    differ = 0
    for _ in range(20):
        views, rates = two_views(numbered_window(28), cfg, g)
        assert views.shape == (2, 16, 4, 5, 3) and views.dtype == torch.uint8
        assert rates.dtype == torch.float32 and rates.shape == (2,)
        assert bool(((rates >= 1.0) & (rates <= 1.25)).all())
        order = views[:, :, 0, 0, 0].long()
        assert bool((order[:, 1:] > order[:, :-1]).all())
        differ += not torch.equal(views[0], views[1])
    assert differ >= 15


def test_transform_on_a_dataset_sample_is_picklable() -> None:
    transform = pickle.loads(pickle.dumps(TemporalTwoViews(TemporalConfig(speed_distortion=False))))
    sample = {"frames": numbered_window(28), "label": 3, "index": 5, "position": 0.4}
    out_a = transform({**sample, "generator": gen(1)})
    out_b = transform({**sample, "generator": gen(1)})
    assert "generator" not in out_a
    assert (out_a["label"], out_a["index"], out_a["position"]) == (3, 5, 0.4)
    assert out_a["frames"].shape == (2, 16, 4, 5, 3)
    assert torch.equal(out_a["frames"], out_b["frames"])
    assert torch.equal(out_a["rate"], torch.ones(2))
