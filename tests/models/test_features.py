"""Feature extraction over real uniform-mode batches with r3d_tiny models."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader

from sstl.augment.spatial import center_crop_normalize
from sstl.config import ModelConfig
from sstl.data.clips import ClipDataset, collate, load_manifest
from sstl.models.features import extract_features
from sstl.models.sstl import Finetuner, SSTLModel

K = 3
CLIP_LEN, CROP = 8, 28
TINY_MODEL = {"arch": "r3d_tiny", "width": 4, "proj_hidden": 16, "proj_dim": 8}


@pytest.fixture(scope="module")
def test_loader(tiny_data):
    manifest = load_manifest(tiny_data.manifest, split="test")
    dataset = ClipDataset(manifest, tiny_data.store, "uniform", CLIP_LEN, num_clips=K)
    return DataLoader(dataset, batch_size=3, collate_fn=collate)  # 8 videos: last batch of 2


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return SSTLModel(ModelConfig(**TINY_MODEL))


@pytest.mark.parametrize(("layer", "dim"), [("projection", 8), ("backbone", 32)])
def test_shapes_labels_and_order(test_loader, tiny_data, model, layer, dim):
    feats, labels, index = extract_features(model, test_loader, layer, "cpu", CROP)
    n = tiny_data.test_videos
    assert feats.shape == (n, K, dim) and feats.dtype == torch.float32
    assert labels.tolist() == test_loader.dataset.labels
    assert index.tolist() == list(range(n))
    assert torch.isfinite(feats).all()
    assert not torch.allclose(feats[:, 0], feats[:, 2])  # different clips, different features


def test_matches_a_manual_forward_of_one_clip(test_loader, model):
    model.train()  # extraction must switch to eval mode (batch-norm statistics) and back
    feats, _, _ = extract_features(model, test_loader, "projection", "cpu", CROP)
    assert model.training
    sample = test_loader.dataset[5]  # video 5, all K clips [K, T, H, W, 3]
    model.eval()
    with torch.no_grad():
        x = center_crop_normalize(sample["frames"], CROP)  # [K, 3, T, S, S]
        assert x.shape == (K, 3, CLIP_LEN, CROP, CROP)
        expected = model(x)["proj"]
    model.train()
    assert torch.allclose(feats[5], expected, atol=1e-5)


def test_logits_of_a_finetuner(test_loader, tiny_data):
    torch.manual_seed(1)
    clf = Finetuner(ModelConfig(**TINY_MODEL), num_classes=4, dropout=0.5)
    a, _, _ = extract_features(clf, test_loader, "logits", "cpu", CROP)
    b, _, _ = extract_features(clf, test_loader, "logits", "cpu", CROP)
    assert a.shape == (tiny_data.test_videos, K, 4)
    assert torch.equal(a, b)  # eval mode: dropout is off
    feats, _, _ = extract_features(clf, test_loader, "backbone", "cpu", CROP)
    assert feats.shape == (tiny_data.test_videos, K, 32)


def test_wrong_layer_or_input_is_an_error(test_loader, model):
    with pytest.raises(TypeError, match="logits"):
        extract_features(model, test_loader, "logits", "cpu", CROP)
    with pytest.raises(ValueError, match="layer"):
        extract_features(model, test_loader, "fc7", "cpu", CROP)
    window = [
        {
            "frames": torch.zeros(2, 8, 32, 32, 3, dtype=torch.uint8),
            "label": [0, 1],
            "index": [0, 1],
        }
    ]
    with pytest.raises(ValueError, match=r"\[B, K, T, H, W, 3\]"):
        extract_features(model, window, "projection", "cpu", CROP)


@pytest.fixture(scope="module")
def mixed_loader(tmp_path_factory, shared_dir, odd_videos):
    """Videos of five frame sizes (a real HMDB51 clip, portrait, square, 2x2, one frame) stored at
    short side 32, in batches of 3 that mix them."""
    from sstl.config import StoreConfig
    from sstl.data.extract import extract_shard

    root = tmp_path_factory.mktemp("mixed")
    hmdb = (
        shared_dir / "videos/hmdb51/BASE_Jumping_Compilation_-_Brilliant_dive_f_cm_np1_le_bad_3.mp4"
    )
    sources = [hmdb, *odd_videos.values()]
    for src in sources:
        (root / "videos/c").mkdir(parents=True, exist_ok=True)
        (root / "videos/c" / src.name).symlink_to(src)
    entries = [(f"c/{s.name}", i % 2, "c", "test") for i, s in enumerate(sources)]
    df = extract_shard(
        entries, root / "videos", root / "store", StoreConfig(short_side=32, gop=8), (0, 1),
        root / "m.csv", progress=False,
    )  # fmt: skip
    dataset = ClipDataset(df, root / "store", "uniform", 8, num_clips=2)
    return DataLoader(dataset, batch_size=3, collate_fn=collate)


def test_features_of_mixed_frame_sizes_equal_each_video_alone(mixed_loader, model):
    feats, _, _ = extract_features(model, mixed_loader, "projection", "cpu", CROP)
    dataset = mixed_loader.dataset
    assert feats.shape == (len(dataset), 2, 8)
    assert len({tuple(dataset[i]["frames"].shape[2:4]) for i in range(len(dataset))}) == 4
    model.eval()
    with torch.no_grad():
        for i in range(len(dataset)):
            x = center_crop_normalize(dataset[i]["frames"], CROP)  # unpadded, alone
            assert torch.allclose(feats[i], model(x)["proj"], atol=1e-5), i
