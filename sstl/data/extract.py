"""Sharded extraction of a dataset's videos into the frame store.

``sstl extract --shard i/n`` decodes every n-th video (from the sorted list) once into
``<store>/<id>.<ext>`` and writes that shard's rows of the manifest (:mod:`sstl.data.manifest`
merges the shards; columns in docs/architecture.md). A video that is
missing or cannot be decoded gets status ``missing``/``corrupt`` with the reason and the stage
goes on. A rerun after a crash skips store files that are already complete: each file is renamed
into place only when written, and its header records the source checksum, the store config and
the writer's revision, which must all match for the file to be reused.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path, PurePosixPath
from typing import Any

import pandas as pd
from tqdm import tqdm

from sstl.config import ConfigError, DatasetConfig, StoreConfig, load_section
from sstl.data import splits
from sstl.data.clips import MANIFEST_COLUMNS
from sstl.data.layout import read_located
from sstl.data.manifest import write_manifest
from sstl.data.store import STORE_REVISION, StoreReader, store_ext, write_store
from sstl.data.video import VideoDecodeError
from sstl.files import sha256_file
from sstl.runtime import command_parser, log_startup, parse_cfg, setup_logging

log = logging.getLogger("sstl.extract")

MAX_LOGGED = 10  # corrupt videos logged one by one; the rest as a count
Entry = tuple[str, int, str, str]  # (path relative to the video root, label, class name, split)


def video_id(rel_path: str) -> str:
    """The manifest id: the source path relative to the video root, without its extension."""
    return str(PurePosixPath(rel_path).with_suffix(""))


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/n"`` -> (i, n) with 0 <= i < n."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not match or not 0 <= int(match[1]) < int(match[2]):
        raise ValueError(f"--shard {text!r} is not allowed: write i/n with 0 <= i < n, e.g. 0/4")
    return int(match[1]), int(match[2])


def _extract_one(
    entry: Entry,
    video_root: Path,
    store_root: Path,
    cfg: StoreConfig,
    prefix: str = "",
    source_rel: str | None = None,
) -> dict:
    rel, label, class_name, split = entry
    vid = video_id(rel)
    store_rel = vid + store_ext(cfg.codec)
    src, dst = video_root / (source_rel or rel), store_root / store_rel
    store_rel = str(PurePosixPath(prefix) / store_rel) if prefix else store_rel
    row: dict[str, Any] = dict.fromkeys(MANIFEST_COLUMNS, "")
    row.update(
        id=vid,
        path=store_rel,
        label=int(label),
        class_name=class_name,
        split=split,
        frames=0,
        fps=0.0,
        width=0,
        height=0,
        size=0,
        status="ok",
    )
    if not src.is_file():
        row.update(path="", status="missing", error=f"source video not found: {src}")
        return row
    row["checksum"] = sha256_file(src)
    meta = {"source_sha256": row["checksum"], "source_size": src.stat().st_size}
    if dst.is_file():
        try:
            reader = StoreReader(dst)
            current = reader.config == asdict(cfg) and reader.revision == STORE_REVISION[cfg.codec]
            if current and reader.meta == meta:
                row.update(
                    frames=reader.num_frames,
                    fps=reader.fps,
                    width=reader.width,
                    height=reader.height,
                    size=dst.stat().st_size,
                    status="reused",
                )
                reader.close()
                return row
            reader.close()
        except (VideoDecodeError, OSError, ValueError, KeyError):
            pass  # an unreadable or stale store file is rewritten below
    try:
        info = write_store(src, dst, cfg, meta=meta)
    except VideoDecodeError as err:
        dst.unlink(missing_ok=True)  # a stale store file of an older source must not survive
        row.update(path="", status="corrupt", error=err.reason)
        return row
    row.update(
        frames=info.num_frames, fps=info.fps, width=info.width, height=info.height, size=info.size
    )
    return row


def extract_shard(
    entries: Sequence[Entry],
    video_root: str | os.PathLike,
    store_root: str | os.PathLike,
    cfg: StoreConfig,
    shard: tuple[int, int],
    out_csv: str | os.PathLike,
    progress: bool = True,
    path_prefix: str = "",
    located: Mapping[str, str] | None = None,
    missing_list: str | os.PathLike | None = None,
) -> pd.DataFrame:
    """Extract shard ``i`` of ``n`` (every n-th entry of the sorted list) and write its CSV.

    ``entries``: ``(rel_path, label, class_name, split)`` with ``rel_path`` under
    ``video_root``, or where ``located`` (listed path -> found path, ``sstl fetch``'s
    ``located.csv``) says. Returns the shard's manifest rows (also written to ``out_csv``).
    ``path_prefix`` is prepended to the manifest ``path`` column: the workflow writes each shard
    into its own folder ``store/<i>-of-<n>/`` and readers resolve paths against ``store/``. The
    store folder is created even when no video of the shard extracts (an empty, valid shard).
    Missing videos are logged as one count (``missing_list``: where the full list is).
    """
    i, n = shard
    if not 0 <= i < n:
        raise ValueError(f"shard {shard} is not allowed: (i, n) with 0 <= i < n")
    mine = sorted(entries, key=lambda e: (e[0], e[3]))[i::n]
    video_root, store_root = Path(video_root), Path(store_root)
    store_root.mkdir(parents=True, exist_ok=True)
    located = located or {}
    rows, reused, corrupt = [], 0, 0
    for entry in tqdm(mine, desc=f"extract {i}/{n}", file=sys.stderr, disable=not progress):
        row = _extract_one(
            entry, video_root, store_root, cfg, path_prefix, located.get(entry[0], entry[0])
        )
        if row["status"] == "reused":
            reused += 1
            row["status"] = "ok"
        elif row["status"] == "corrupt":
            corrupt += 1
            if corrupt <= MAX_LOGGED:
                log.warning("corrupt %s: %s", row["id"], row["error"])
        rows.append(row)
    df = pd.DataFrame(rows, columns=MANIFEST_COLUMNS)
    write_manifest(df, out_csv)
    absent = int((df["status"] == "missing").sum())
    if absent:
        where = f"; all the dataset's missing videos: {missing_list}" if missing_list else ""
        log.warning(
            "%d of this shard's %d videos are missing from %s (status missing in %s%s)",
            absent, len(df), video_root, out_csv, where,
        )  # fmt: skip
    if corrupt > MAX_LOGGED:
        log.warning(
            "... and %d more corrupt videos (status corrupt in %s)", corrupt - MAX_LOGGED, out_csv
        )
    counts = df["status"].value_counts().to_dict()
    log.info(
        "shard %d/%d: %d videos, %s (%d already in the store) -> %s",
        i,
        n,
        len(df),
        counts,
        reused,
        out_csv,
    )
    return df


def split_entries(name: str, split_dir: str | os.PathLike, split: int = 1) -> list[Entry]:
    """The extraction entries of dataset ``name`` from its split files."""
    parsed = splits.load(name, Path(split_dir), split=split)
    entries = []
    for part, items in (("train", parsed.train), ("test", parsed.test), ("val", parsed.val)):
        entries += [
            (rel, label, parsed.classes[label] if 0 <= label < len(parsed.classes) else "", part)
            for rel, label in items
        ]
    return entries


def cli_extract(argv: list[str]) -> int:
    ap = command_parser(
        "sstl extract",
        "Decode one shard of a dataset's videos once into the frame store: every frame resized\n"
        "to the store's short side and re-encoded for fast random access during training. Run\n"
        "shards 0/n .. n-1/n in parallel, then `sstl manifest` to merge their CSVs.\n\n"
        "Reads SOURCE/videos/ and SOURCE/splits/ (made by `sstl fetch` or `sstl synthetic`);\n"
        "writes the store files under STORE and one CSV row per video to OUT (a video that is\n"
        "missing or cannot be decoded is recorded as such, and the others go on).",
        "sstl extract --dataset ucf101 --source data/ucf101/source\n"
        "--store data/ucf101/store/0-of-4 --store-root data/ucf101/store --shard 0/4\n"
        "--out data/ucf101/shards/0-of-4.csv",
    )
    ap.add_argument("--dataset", required=True, choices=splits.DATASETS, help="the dataset")
    ap.add_argument("--source", required=True, type=Path, help="folder with videos/ and splits/")
    ap.add_argument("--store", required=True, type=Path, help="store folder to write into")
    ap.add_argument(
        "--store-root",
        type=Path,
        help="folder the manifest paths are relative to (default: --store); --store must be "
        "inside it",
    )
    ap.add_argument("--shard", default="0/1", help="i/n: this job's share of the videos")
    ap.add_argument(
        "--cfg",
        help='settings: {"store": the store section of a config file, "split": 1, 2 or 3}, '
        "as inline JSON or @file.yaml; keys left out keep their defaults",
    )
    ap.add_argument("--out", required=True, type=Path, help="the shard's manifest CSV")
    args = ap.parse_args(argv)
    setup_logging()
    try:
        shard = parse_shard(args.shard)
    except ValueError as err:
        ap.error(str(err))
    raw = parse_cfg(args.cfg)
    unknown = sorted(set(raw) - {"store", "split"})
    if unknown:
        raise ConfigError(f"--cfg: unknown key {unknown[0]!r}; allowed keys: split, store")
    cfg = load_section(StoreConfig, raw.get("store"), "store")
    # the dataset section owns the split's range
    split = load_section(DatasetConfig, {"split": raw.get("split", 1)}).split
    log_startup(
        "extract",
        {
            "dataset": args.dataset,
            "source": str(args.source),
            "store": asdict(cfg),
            "split": split,
            "shard": args.shard,
        },
    )
    entries = split_entries(args.dataset, args.source / "splits", split)
    located = read_located(args.source / "located.csv")
    root = args.store_root or args.store
    try:
        prefix = args.store.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        ap.error(f"--store {args.store} is not inside --store-root {root}")
    prefix = "" if prefix == "." else prefix
    missing = args.source / "missing.txt"
    extract_shard(
        entries,
        args.source / "videos",
        args.store,
        cfg,
        shard,
        args.out,
        path_prefix=prefix,
        located=located,
        missing_list=missing if missing.is_file() else None,
    )
    return 0
