"""The manifest: the shards' CSVs merged into ``data/<ds>/manifest.csv`` (``sstl manifest``).

One row per listed video (columns in docs/architecture.md), written atomically: a crash leaves
the old manifest or the new one.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from sstl.data.clips import MANIFEST_COLUMNS, load_manifest
from sstl.files import tmp_name
from sstl.runtime import command_parser, log_startup, setup_logging

log = logging.getLogger("sstl.manifest")

_SHARD_NAME = re.compile(r"(\d+)-of-(\d+)$")


def write_manifest(df: pd.DataFrame, out_csv: str | os.PathLike) -> None:
    """``df`` as CSV at ``out_csv``, via a temporary file renamed into place."""
    out = Path(out_csv)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_name(out)
    try:
        df.to_csv(tmp, index=False)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)


def merge_manifest(
    shard_csvs: Sequence[str | os.PathLike], out_csv: str | os.PathLike
) -> pd.DataFrame:
    """Concatenate shard CSVs named ``<i>-of-<n>.csv`` into the manifest, sorted by split, id.

    Every shard 0..n-1 must be there exactly once and no id may appear twice.
    """
    if not shard_csvs:
        raise ValueError("merge_manifest: no shard CSVs given")
    found: dict[int, Path] = {}
    totals = set()
    for path in map(Path, shard_csvs):
        match = _SHARD_NAME.search(path.stem)
        if not match:
            raise ValueError(f"{path}: shard CSVs must be named <i>-of-<n>.csv, e.g. 0-of-4.csv")
        k, total = int(match[1]), int(match[2])
        if k in found:
            raise ValueError(f"shard {k} is given twice: {found[k]} and {path}")
        found[k] = path
        totals.add(total)
    if len(totals) != 1:
        raise ValueError(f"shard CSVs come from different shard counts {sorted(totals)}")
    (total,) = totals
    absent = sorted(set(range(total)) - set(found))
    if absent or max(found) >= total:
        raise ValueError(f"shards {absent or [max(found)]} of {total} are missing or out of range")
    df = pd.concat([load_manifest(found[k]) for k in range(total)], ignore_index=True)
    dup = df["id"][df["id"].duplicated()]
    if not dup.empty:
        raise ValueError(f"{len(dup)} ids appear in more than one row, e.g. {dup.iloc[0]!r}")
    df = df.sort_values(["split", "id"], kind="stable").reset_index(drop=True)[MANIFEST_COLUMNS]
    write_manifest(df, out_csv)
    counts = df.groupby(["split", "status"]).size().to_dict()
    log.info(
        "manifest %s: %d videos from %d shards, per (split, status): %s",
        out_csv,
        len(df),
        total,
        counts,
    )
    return df


def cli(argv: list[str]) -> int:
    ap = command_parser(
        "sstl manifest",
        "Merge the per-shard CSVs written by `sstl extract` into the dataset's manifest: one row\n"
        "per video with its store file, label, split, frame count, size, checksum and status\n"
        "(ok, missing or corrupt, with the reason).",
        "sstl manifest --shards data/ucf101/shards/*.csv --out data/ucf101/manifest.csv",
    )
    ap.add_argument(
        "--shards", required=True, nargs="+", type=Path, help="the shards' <i>-of-<n>.csv files"
    )
    ap.add_argument("--out", required=True, type=Path, help="the dataset's manifest.csv")
    args = ap.parse_args(argv)
    setup_logging()
    log_startup("manifest", {"shards": [str(p) for p in args.shards], "out": str(args.out)})
    try:
        merge_manifest(args.shards, args.out)
    except (ValueError, FileNotFoundError) as err:
        raise SystemExit(f"sstl manifest: {err}") from None
    return 0
