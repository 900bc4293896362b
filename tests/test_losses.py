"""Losses against hand-computed values on tiny tensors, and a loss that must fall."""

from __future__ import annotations

import math

import pytest
import torch

from sstl.config import LossConfig
from sstl.losses import clip_to_video, info_nce, playback_rate, sstl_loss

S = 1 / math.sqrt(2)


def _nce_term(pos: float, negs: list[float], tau: float) -> float:
    """-log(exp(pos/tau) / (exp(pos/tau) + sum exp(neg/tau)))."""
    num = math.exp(pos / tau)
    return -math.log(num / (num + sum(math.exp(n / tau) for n in negs)))


def test_info_nce_by_hand_b2_d2() -> None:
    # x0=(1,0) x1=(0,1); y0=(1,1)->(s,s) after normalising, y1=(0,2)->(0,1)
    h_x = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    h_y = torch.tensor([[1.0, 1.0], [0.0, 2.0]])
    tau = 0.5
    # anchor: (positive similarity, [similarities to the other views])
    expected = [
        _nce_term(S, [0.0, 0.0], tau),  # x0: pos y0; negs x1, y1
        _nce_term(1.0, [0.0, S], tau),  # x1: pos y1; negs x0, y0
        _nce_term(S, [S, S], tau),  # y0: pos x0; negs x1, y1
        _nce_term(1.0, [0.0, S], tau),  # y1: pos x1; negs x0, y0
    ]
    got = info_nce(h_x, h_y, temperature=tau)
    assert got.item() == pytest.approx(sum(expected) / 4, rel=1e-6)


def test_info_nce_memory_negatives_by_hand() -> None:
    h_x = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    h_y = torch.tensor([[1.0, 1.0], [0.0, 2.0]])
    neg = torch.tensor([[-3.0, 0.0]])  # (-1, 0) after normalising
    tau = 0.5
    expected = [
        _nce_term(S, [0.0, 0.0, -1.0], tau),
        _nce_term(1.0, [0.0, S, 0.0], tau),
        _nce_term(S, [S, S, -S], tau),
        _nce_term(1.0, [0.0, S, 0.0], tau),
    ]
    got = info_nce(h_x, h_y, negatives=neg, temperature=tau)
    assert got.item() == pytest.approx(sum(expected) / 4, rel=1e-6)
    # an empty negative set is the same as none
    empty = info_nce(h_x, h_y, negatives=torch.zeros(0, 2), temperature=tau)
    assert empty.item() == pytest.approx(info_nce(h_x, h_y, temperature=tau).item())


def test_info_nce_matches_printed_eq3_loops() -> None:
    """Eq. 3 as printed, in loops: the indicator on the x-term, the y-sum over all k."""
    g = torch.Generator().manual_seed(1)
    h_x, h_y = torch.randn(5, 7, generator=g), torch.randn(5, 7, generator=g)
    tau = 0.2

    def sim(a: torch.Tensor, b: torch.Tensor) -> float:
        return float(a @ b / (a.norm() * b.norm()))

    def anchor_loss(a: torch.Tensor, b: torch.Tensor, i: int) -> float:
        den = sum(
            (math.exp(sim(a[i], a[k]) / tau) if k != i else 0.0) + math.exp(sim(a[i], b[k]) / tau)
            for k in range(len(a))
        )
        return -math.log(math.exp(sim(a[i], b[i]) / tau) / den)

    eq4 = sum(anchor_loss(h_x, h_y, i) + anchor_loss(h_y, h_x, i) for i in range(5)) / 10
    assert info_nce(h_x, h_y, temperature=tau).item() == pytest.approx(eq4, rel=1e-5)


def test_info_nce_is_invariant_to_input_scale() -> None:
    g = torch.Generator().manual_seed(0)
    h_x, h_y, neg = (torch.randn(4, 8, generator=g) for _ in range(3))
    base = info_nce(h_x, h_y, neg)
    scaled = info_nce(3.0 * h_x, 0.25 * h_y, 7.0 * neg)
    assert scaled.item() == pytest.approx(base.item(), rel=1e-5)


def test_info_nce_does_not_backprop_into_memory_negatives() -> None:
    h_x = torch.randn(3, 4, requires_grad=True)
    neg = torch.randn(5, 4, requires_grad=True)
    info_nce(h_x, torch.randn(3, 4), neg).backward()
    assert h_x.grad is not None and h_x.grad.abs().sum() > 0
    assert neg.grad is None


def test_info_nce_falls_when_training_a_linear_model() -> None:
    """Views share 4 signal dims and differ in 12 loud nuisance dims the model learns to drop."""
    torch.manual_seed(0)
    signal = torch.randn(32, 4)  # 32 "videos"

    def view() -> torch.Tensor:
        return torch.cat([signal + 0.1 * torch.randn(32, 4), 3.0 * torch.randn(32, 12)], dim=1)

    model = torch.nn.Linear(16, 8)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    losses = []
    for _ in range(50):
        loss = info_nce(model(view()), model(view()), temperature=0.2)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert sum(losses[-5:]) / 5 < 0.5 * sum(losses[:5]) / 5


def test_clip_to_video_by_hand_and_detached() -> None:
    h = torch.tensor([[1.0, 0.0], [0.0, 2.0]], requires_grad=True)
    video = torch.tensor([[1.0, 1.0], [0.0, 5.0]], requires_grad=True)
    loss = clip_to_video(h, video)
    assert loss.item() == pytest.approx(-(S + 1.0) / 2, rel=1e-6)
    loss.backward()
    assert video.grad is None and h.grad is not None
    with pytest.raises(ValueError, match="same"):
        clip_to_video(torch.zeros(2, 3), torch.zeros(2, 4))


def test_playback_rate_by_hand() -> None:
    pred, target = torch.tensor([1.0, 1.2]), torch.tensor([1.1, 1.0])
    assert playback_rate(pred, target).item() == pytest.approx(0.5 * (0.01 + 0.04) / 2, rel=1e-5)
    with pytest.raises(ValueError, match=r"\[B\]"):
        playback_rate(pred[:, None], target)


def test_sstl_loss_weights_and_skipped_parts() -> None:
    parts = {"ctr": torch.tensor(2.0), "spd": torch.tensor(1.0), "video": torch.tensor(-0.5)}
    total, logs = sstl_loss(parts, LossConfig())
    assert total.item() == pytest.approx(2.0 * 1.0 + 1.0 * 0.1 - 0.5 * 0.2)
    assert logs == pytest.approx({"ctr": 2.0, "spd": 1.0, "video": -0.5, "total": 2.0})
    total, logs = sstl_loss({"ctr": torch.tensor(2.0), "spd": None}, {"w_ctr": 0.5})
    assert total.item() == pytest.approx(1.0)
    assert set(logs) == {"ctr", "total"}
    with pytest.raises(ValueError, match="speed"):
        sstl_loss({"speed": torch.tensor(1.0)}, LossConfig())
