"""Clip sampling and ClipDataset on a real extracted store."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest
import torch
from torch.utils.data import DataLoader

from sstl.config import StoreConfig
from sstl.data.clips import (
    ClipDataset,
    StoreFilesMissingError,
    collate,
    random_window,
    uniform_clips,
)
from sstl.data.extract import extract_shard, split_entries
from sstl.data.store import StoreReader


@pytest.fixture(scope="module")
def store_manifest(tmp_path_factory, ucf_source) -> tuple[pd.DataFrame, object]:
    """The UCF101-layout source extracted at short side 32 (fast): (manifest rows, store)."""
    root = tmp_path_factory.mktemp("clips_store")
    entries = split_entries("ucf101", ucf_source / "splits", 1)
    df = extract_shard(
        entries,
        ucf_source / "videos",
        root,
        StoreConfig(short_side=32),
        (0, 1),
        root / "0-of-1.csv",
        progress=False,
    )
    return df, root


def test_random_window_consecutive_and_position():
    g = torch.Generator().manual_seed(0)
    for _ in range(200):
        idx, pos = random_window(100, 28, g)
        assert idx == list(range(idx[0], idx[0] + 28)) and 0 <= idx[0] <= 72
        assert pos == pytest.approx((idx[0] + 13.5) / 100) and 0 <= pos <= 1
    starts = {random_window(30, 28, g)[0][0] for _ in range(200)}
    assert starts == {0, 1, 2}  # every start is reachable


def test_random_window_short_video_repeats_last_frame():
    g = torch.Generator().manual_seed(0)
    idx, pos = random_window(5, 8, g)
    assert idx == [0, 1, 2, 3, 4, 4, 4, 4] and pos == pytest.approx(2 / 5)
    assert random_window(1, 3, g) == ([0, 0, 0], 0.0)
    with pytest.raises(ValueError, match="num_frames=0"):
        random_window(0, 3, g)


def test_uniform_clips_span_the_video():
    clips = uniform_clips(100, 16, 5)
    assert [c[0] for c in clips] == [0, 21, 42, 63, 84] and clips[-1][-1] == 99
    assert all(c == list(range(c[0], c[0] + 16)) for c in clips)
    assert uniform_clips(100, 16, 1) == [list(range(42, 58))]  # one clip: the centre one
    short = uniform_clips(10, 16, 3)
    assert len(short) == 3 and all(c == [*range(10), *[9] * 6] for c in short)


def test_dataset_window_mode(store_manifest):
    df, root = store_manifest
    ds = ClipDataset(df, root, mode="window", clip_len=16, window=28, seed=3)
    assert len(ds) == (df["status"] == "ok").sum() == 6
    ok = df[df["status"] == "ok"].reset_index(drop=True)
    for i in range(len(ds)):
        item = ds[i]
        assert item["frames"].shape == (28, 32, 42, 3) and item["frames"].dtype == torch.uint8
        assert item["label"] == ok.loc[i, "label"] and item["index"] == i
        info = ds.clip(i)
        assert item["position"] == info.position and 0 <= info.position <= 1
        expected = StoreReader(root / ok.loc[i, "path"]).read(info.indices)
        assert torch.equal(item["frames"], expected)
    assert torch.equal(ds[2]["frames"], ds[2]["frames"])  # same epoch, same window
    first = [ds.clip(i).start for i in range(len(ds))]
    ds.set_epoch(1)
    assert [ds.clip(i).start for i in range(len(ds))] != first


def test_dataset_uniform_mode_and_transform(store_manifest):
    df, root = store_manifest

    def transform(sample):
        g = sample["generator"]  # the item's seeded stream
        return {**sample, "frames": sample["frames"][:, ::2], "noise": torch.rand(1, generator=g)}

    ds = ClipDataset(df, root, mode="uniform", clip_len=8, num_clips=3, transform=transform)
    item = ds[0]
    assert item["frames"].shape == (3, 4, 32, 42, 3) and item["position"] == 0.5
    assert "generator" not in item and torch.equal(item["noise"], ds[0]["noise"])
    batch = collate([ds[0], ds[1]])
    assert batch["frames"].shape == (2, 3, 4, 32, 42, 3)
    assert batch["position"].dtype == torch.float32 and batch["index"].tolist() == [0, 1]
    with pytest.raises(ValueError, match="mode"):
        ClipDataset(df, root, mode="dense")


def _epoch_batches(loader, ds, epoch):
    ds.set_epoch(epoch)
    return [b for b in loader]


def test_same_samples_whatever_the_number_of_workers(store_manifest):
    df, root = store_manifest
    ds = ClipDataset(df, root, mode="window", window=20, seed=7)
    serial = DataLoader(ds, batch_size=2, num_workers=0, collate_fn=collate)
    parallel = DataLoader(
        ds, batch_size=2, num_workers=2, collate_fn=collate, persistent_workers=True
    )
    for epoch in (0, 1):  # persistent workers see set_epoch through shared memory
        a, b = _epoch_batches(serial, ds, epoch), _epoch_batches(parallel, ds, epoch)
        assert len(a) == len(b) == 3
        for x, y in zip(a, b, strict=True):
            assert torch.equal(x["frames"], y["frames"]) and torch.equal(x["label"], y["label"])
            assert torch.equal(x["position"], y["position"])
    assert not torch.equal(
        _epoch_batches(serial, ds, 0)[0]["position"], _epoch_batches(serial, ds, 1)[0]["position"]
    )


def test_store_file_deleted_after_extraction_is_named_when_the_dataset_is_built(
    store_manifest, tmp_path
):
    df, root = store_manifest
    store = tmp_path / "synthetic" / "store"
    shutil.copytree(root, store / "1-of-2")  # the workflow's layout: <store>/<shard>/<id>.mp4
    df = df.assign(path=["1-of-2/" + p for p in df["path"]])
    ok = df[df["status"] == "ok"].reset_index(drop=True)
    gone = ok.loc[2, "path"]
    (store / gone).unlink()
    with pytest.raises(StoreFilesMissingError) as err:
        ClipDataset(df, store, mode="window", clip_len=16)
    msg = str(err.value)
    assert f"1 of {len(ok)}" in msg and gone in msg and str(store) in msg
    assert "shard(s) 1-of-2 again" in msg and f"{tmp_path}/synthetic/shards/<shard>.csv" in msg
    shutil.rmtree(store / "1-of-2")  # the whole shard folder gone
    with pytest.raises(StoreFilesMissingError, match=f"{len(ok)} of {len(ok)}"):
        ClipDataset(df, store, mode="uniform", clip_len=8)


# --- mixed frame sizes: the store keeps each video's aspect ratio ---------------------------


@pytest.fixture(scope="module")
def mixed_store(tmp_path_factory, shared_dir, odd_videos) -> tuple[pd.DataFrame, object]:
    """Two real HMDB51 clips (340x256, 306x256) and the generated portrait, square, 2x2 and
    1-frame videos, extracted at short side 32: stored widths 42, 38, 32, 32, 32, 54."""
    root = tmp_path_factory.mktemp("mixed_store")
    videos = root / "videos" / "any"
    videos.mkdir(parents=True)
    hmdb = shared_dir / "videos" / "hmdb51"
    sources = [
        hmdb / "50_FIRST_DATES_drink_u_nm_np1_fr_goo_29.mp4",
        hmdb / "BASE_Jumping_Compilation_-_Brilliant_dive_f_cm_np1_le_bad_3.mp4",
        *odd_videos.values(),
    ]
    for src in sources:
        (videos / src.name).symlink_to(src)
    entries = [(f"any/{s.name}", 0, "any", "train") for s in sources]
    df = extract_shard(
        entries, root / "videos", root / "store", StoreConfig(short_side=32, gop=8), (0, 1),
        root / "0-of-1.csv", progress=False,
    )  # fmt: skip
    assert set(df["status"]) == {"ok"}, df[["id", "status", "error"]]
    return df, root / "store"


def test_collate_pads_mixed_frame_sizes_and_keeps_real_sizes(mixed_store):
    df, root = mixed_store
    ds = ClipDataset(df, root, mode="window", window=6, seed=1)
    items = [ds[i] for i in range(len(ds))]
    shapes = {tuple(it["frames"].shape[1:3]) for it in items}
    assert len(shapes) >= 4, shapes  # landscape, two widths, portrait, square
    batch = collate(items)  # failed before: "stack expects each tensor to be equal size"
    h, w = max(s[0] for s in shapes), max(s[1] for s in shapes)
    assert batch["frames"].shape == (len(items), 6, h, w, 3)
    assert batch["sizes"].dtype == torch.int64
    for i, it in enumerate(items):
        fh, fw = it["frames"].shape[1:3]
        assert batch["sizes"][i].tolist() == [fh, fw]
        assert torch.equal(batch["frames"][i, :, :fh, :fw], it["frames"])
        assert not batch["frames"][i, :, fh:].any() and not batch["frames"][i, :, :, fw:].any()
    # one size: stacked as before, sizes added
    same = collate([items[0], items[0]])
    assert torch.equal(same["frames"], torch.stack([items[0]["frames"]] * 2))
    assert same["sizes"].tolist() == [list(items[0]["frames"].shape[1:3])] * 2


def test_mixed_sizes_through_loader_workers(mixed_store):
    df, root = mixed_store
    ds = ClipDataset(df, root, mode="uniform", clip_len=4, num_clips=2)
    serial = list(DataLoader(ds, batch_size=3, num_workers=0, collate_fn=collate))
    parallel = list(DataLoader(ds, batch_size=3, num_workers=2, collate_fn=collate))
    assert len(serial) == len(parallel) == 2
    for a, b in zip(serial, parallel, strict=True):
        assert torch.equal(a["frames"], b["frames"]) and torch.equal(a["sizes"], b["sizes"])
        assert a["frames"].shape[:3] == (3, 2, 4)


def test_collate_refuses_samples_that_differ_in_more_than_height_and_width():
    a = {"frames": torch.zeros(4, 8, 8, 3, dtype=torch.uint8), "label": 0}
    b = {"frames": torch.zeros(5, 8, 6, 3, dtype=torch.uint8), "label": 1}
    with pytest.raises(ValueError, match="differ in more than H and W"):
        collate([a, b])
