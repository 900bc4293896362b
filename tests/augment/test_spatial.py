"""Batched, clip-consistent spatial augmentations against torchvision (METHOD §3)."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torchvision.transforms.v2 import functional as TF

from sstl.augment.spatial import (
    KINETICS_MEAN,
    KINETICS_STD,
    SpatialAugment,
    blur,
    center_crop_normalize,
    color_jitter_,
    two_view_augment,
)
from sstl.config import SpatialConfig

MEAN = torch.tensor(KINETICS_MEAN).view(3, 1, 1, 1)
STD = torch.tensor(KINETICS_STD).view(3, 1, 1, 1)
STRONG = SpatialConfig(jitter_prob=1.0, blur_prob=1.0, grayscale_prob=0.0)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def unnormalize(x: torch.Tensor) -> torch.Tensor:
    """``[..., 3, T, S, S]`` normalised -> [0, 1] scale."""
    return x * STD + MEAN


def full_frame(cfg: SpatialConfig, h: int, w: int, **changes) -> SpatialConfig:
    """``cfg`` with the random resized crop pinned to the whole frame."""
    return dataclasses.replace(cfg, scale=(1.0, 1.0), ratio=(w / h, w / h), **changes)


def test_shape_dtype_device_and_determinism(real_clip: torch.Tensor) -> None:
    clips = torch.stack([real_clip, real_clip.flip(0)])
    aug = SpatialAugment(SpatialConfig())
    out = aug(clips, gen(3))
    assert out.shape == (2, 3, 16, 112, 112) and out.dtype == torch.float32
    assert out.device == clips.device and bool(out.isfinite().all())
    assert torch.equal(out, aug(clips, gen(3)))
    assert not torch.equal(out, aug(clips, gen(4)))


def test_cpu_chunking_does_not_change_the_result(real_clip: torch.Tensor) -> None:
    clips = torch.stack([real_clip] * 5)
    params = SpatialAugment(STRONG).sample_params(5, 128, 171, gen())
    one = SpatialAugment(STRONG, cpu_chunk=1).apply(clips, params)
    whole = SpatialAugment(STRONG, cpu_chunk=64).apply(clips, params)
    assert torch.allclose(one, whole, atol=1e-5)


def test_every_frame_of_a_clip_gets_the_same_parameters(real_clip: torch.Tensor) -> None:
    still = real_clip[:1].expand(8, -1, -1, -1)  # 8 identical frames
    clips = torch.stack([still, real_clip[5:6].expand(8, -1, -1, -1)] * 3)
    for cfg in (STRONG, dataclasses.replace(STRONG, grayscale_prob=0.5)):
        out = SpatialAugment(cfg)(clips, gen(1))
        assert torch.allclose(out, out[:, :, :1].expand_as(out), atol=1e-5)
        assert not torch.allclose(out[0], out[2], atol=1e-3)  # clips draw their own parameters


def test_views_are_independent_unless_shared(real_clip: torch.Tensor) -> None:
    views = torch.stack([real_clip[:8], real_clip[:8]]).unsqueeze(0).repeat(3, 1, 1, 1, 1, 1)
    x, y = two_view_augment(SpatialAugment(STRONG), views, gen())
    assert x.shape == y.shape == (3, 3, 8, 112, 112)
    assert all(not torch.allclose(x[i], y[i], atol=1e-3) for i in range(3))
    shared = SpatialAugment(dataclasses.replace(STRONG, share_views=True))
    x, y = two_view_augment(shared, views, gen())
    assert torch.equal(x, y)
    assert not torch.allclose(x[0], x[1], atol=1e-3)


def test_horizontal_flip_mirrors_the_frame() -> None:
    clip = torch.zeros(1, 2, 112, 112, 3, dtype=torch.uint8)
    clip[..., 70:, :] = 255  # bright on the right
    clip[..., 10:20, 5:9, 0] = 200  # a red mark near the top left
    cfg = full_frame(SpatialConfig(color=False), 112, 112)
    plain = SpatialAugment(dataclasses.replace(cfg, flip_prob=0.0))(clip, gen())
    flipped = SpatialAugment(dataclasses.replace(cfg, flip_prob=1.0))(clip, gen())
    frames = clip[0].permute(3, 0, 1, 2).float() / 255  # [3, T, H, W]: no resize, no crop
    assert torch.allclose(unnormalize(plain[0]), frames, atol=1e-5)
    assert torch.allclose(flipped, plain.flip(-1), atol=1e-5)
    assert float(unnormalize(flipped[0])[:, :, :, :40].mean()) > 0.9  # bright part now left


def test_grayscale_gives_equal_channels(real_clip: torch.Tensor) -> None:
    cfg = SpatialConfig(grayscale_prob=1.0, jitter_prob=0.0, blur_prob=0.0)
    rgb = unnormalize(SpatialAugment(cfg)(real_clip[None, :4], gen())[0])
    assert torch.allclose(rgb[0], rgb[1], atol=1e-5) and torch.allclose(rgb[1], rgb[2], atol=1e-5)


def test_identity_settings_equal_a_plain_resize(real_clip: torch.Tensor) -> None:
    cfg = full_frame(
        SpatialConfig(jitter_prob=1.0, grayscale_prob=0.0, blur_prob=0.0, flip_prob=0.0),
        128,
        171,
        brightness=0.0,
        contrast=0.0,
        saturation=0.0,
        hue=0.0,
    )
    out = SpatialAugment(cfg)(real_clip[None], gen())[0]
    frames = real_clip.permute(0, 3, 1, 2).float() / 255  # [T, 3, H, W]
    ref = TF.resize(frames, [112, 112], antialias=False).transpose(0, 1)
    assert torch.allclose(unnormalize(out), ref, atol=1e-4)


def test_disabled_is_a_centre_crop(real_clip: torch.Tensor) -> None:
    clips = real_clip[None, :4]
    out = SpatialAugment(SpatialConfig(enabled=False))(clips, gen())
    ref = clips[0, :, 8:120, 30:142].permute(3, 0, 1, 2).float() / 255  # [3, T, 112, 112]
    assert torch.allclose(unnormalize(out[0]), ref, atol=1e-5)
    assert torch.equal(out, center_crop_normalize(clips, 112))


def test_center_crop_resizes_other_short_sides(real_clip: torch.Tensor) -> None:
    frames = real_clip[:2].permute(0, 3, 1, 2).float()  # [T, 3, 128, 171]
    small = TF.resize(frames, [96, 128], antialias=True).round().to(torch.uint8)
    out = center_crop_normalize(small.permute(0, 2, 3, 1)[None, None], 112)
    assert out.shape == (1, 1, 3, 2, 112, 112)
    ref = TF.center_crop(TF.resize(small.float(), 128, antialias=True), [112, 112]) / 255
    assert torch.allclose(unnormalize(out[0, 0]), ref.transpose(0, 1), atol=1e-4)


def clip01(real_clip: torch.Tensor) -> torch.Tensor:
    """The real clip as ``[1, 3, T, H, W]`` float in [0, 1] (8 frames, a 64x64 patch)."""
    return real_clip[None, :8, 32:96, 50:114].permute(0, 4, 1, 2, 3).float() / 255


def video(x: torch.Tensor) -> torch.Tensor:
    """``[3, T, H, W]`` -> torchvision's video layout ``[T, 3, H, W]``."""
    return x.transpose(0, 1)


@pytest.mark.parametrize(
    ("which", "factor"),
    [("brightness", 1.35), ("brightness", 0.6), ("contrast", 1.4), ("contrast", 0.6),
     ("saturation", 1.4), ("saturation", 0.0), ("hue", 0.1), ("hue", -0.08), ("hue", 0.5)],
)  # fmt: skip
def test_colour_ops_match_torchvision(real_clip: torch.Tensor, which: str, factor: float) -> None:
    x = clip01(real_clip)
    factors = {"brightness": 1.0, "contrast": 1.0, "saturation": 1.0, "hue": 0.0, which: factor}
    ours = color_jitter_(x.clone(), *(torch.tensor([factors[k]]) for k in factors))
    ref = getattr(TF, f"adjust_{which}")(video(x[0]), factor)
    assert (video(ours[0]) - ref).abs().max() < 1e-2
    assert (ours - x).abs().max() > 1e-2  # the op did something


def test_colour_jitter_combines_ops_in_order(real_clip: torch.Tensor) -> None:
    x = clip01(real_clip)
    ref = video(x[0])
    for op, f in (("brightness", 1.2), ("contrast", 0.8), ("hue", 0.05), ("saturation", 1.3)):
        ref = getattr(TF, f"adjust_{op}")(ref, f)
    ours = color_jitter_(x.clone(), *(torch.tensor([f]) for f in (1.2, 0.8, 1.3, 0.05)))
    assert (video(ours[0]) - ref).abs().max() < 1e-2


@pytest.mark.parametrize("sigma", [0.3, 1.1, 2.0])
def test_blur_matches_torchvision(real_clip: torch.Tensor, sigma: float) -> None:
    x = clip01(real_clip)
    ours = blur(torch.cat([x, x]), torch.tensor([sigma, 0.1]), 13)
    ref = TF.gaussian_blur(video(x[0]), [13, 13], [sigma, sigma])
    assert (video(ours[0]) - ref).abs().max() < 1e-2
    assert (ours[1] - x[0]).abs().max() < 1e-3  # sigma 0.1 is (almost) the identity


def test_bad_input_is_rejected() -> None:
    with pytest.raises(ValueError, match="uint8"):
        SpatialAugment(SpatialConfig())(torch.zeros(1, 2, 16, 16, 3))


def test_two_views_need_a_view_axis() -> None:
    with pytest.raises(ValueError, match="B, 2, T"):
        two_view_augment(SpatialAugment(SpatialConfig()), torch.zeros(1, 16, 8, 8, 3).byte())
