"""Parsers for the official split files of UCF101, HMDB51 and Kinetics-400.

Every parser returns a :class:`Split`: the class names (index = 0-based label) and, per part, a
list of ``(relative video path, label)`` where the path is relative to the dataset's ``videos/``
folder. The project ships byte-for-byte copies of the official files under
``sstl/data/official/<name>/`` (:func:`official_dir`); see the README there for their origin.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path

DATASETS = ("ucf101", "hmdb51", "kinetics400", "synthetic")
OFFICIAL = ("ucf101", "hmdb51", "kinetics400")


class SplitFormatError(ValueError):
    """A split file is malformed; the message names the file and line."""


@dataclass
class Split:
    classes: list[str]
    train: list[tuple[str, int]]
    test: list[tuple[str, int]]
    val: list[tuple[str, int]] = field(default_factory=list)

    def parts(self) -> dict[str, list[tuple[str, int]]]:
        """The non-empty parts by name (``train``, ``test``, ``val``)."""
        parts = {"train": self.train, "test": self.test, "val": self.val}
        return {name: items for name, items in parts.items() if items}


def official_dir(name: str) -> Path:
    """The packaged copy of dataset ``name``'s official split files."""
    if name not in OFFICIAL:
        raise ValueError(f"no official split files for {name!r}; known: {', '.join(OFFICIAL)}")
    return Path(__file__).resolve().parent / "official" / name


def _lines(path: Path) -> list[tuple[int, str]]:
    """(1-based line number, stripped text) of the non-blank lines; CRLF and BOM tolerated."""
    if not path.is_file():
        raise FileNotFoundError(f"split file not found: {path}")
    with path.open(encoding="utf-8-sig", newline=None) as fh:  # newline=None: CRLF -> LF
        return [(n, line.strip()) for n, line in enumerate(fh, 1) if line.strip()]


def _check_split_number(split: int) -> None:
    if split not in (1, 2, 3):
        raise ValueError(f"split = {split!r} is not allowed: 1, 2 or 3")


def _no_overlap(train: list[tuple[str, int]], test: list[tuple[str, int]], where: Path) -> None:
    both = {p for p, _ in train} & {p for p, _ in test}
    if both:
        raise SplitFormatError(
            f"{where}: {len(both)} videos are in both train and test, e.g. {sorted(both)[0]}"
        )


def ucf101(split_dir: str | Path, split: int = 1) -> Split:
    """UCF101 ``classInd.txt`` + ``trainlist0N.txt`` + ``testlist0N.txt``.

    classInd is 1-based (converted to 0-based). The class of a video is its folder name, looked
    up case-sensitively: the folder is ``HandstandPushups`` while the file names say
    ``v_HandStandPushups_*``, so the file name is never used. Train labels must agree with the
    folder's class; test lines carry no label (an optional one is checked the same way).
    """
    split_dir = Path(split_dir)
    _check_split_number(split)
    ind = split_dir / "classInd.txt"
    classes: list[str] = []
    for n, line in _lines(ind):
        parts = line.split()
        if len(parts) != 2 or not parts[0].isdigit():
            raise SplitFormatError(f"{ind}:{n}: expected '<index> <Class>', got {line!r}")
        if int(parts[0]) != len(classes) + 1:
            raise SplitFormatError(
                f"{ind}:{n}: class index {parts[0]} out of order (expected {len(classes) + 1})"
            )
        classes.append(parts[1])
    index = {c: i for i, c in enumerate(classes)}

    def parse(path: Path, need_label: bool) -> list[tuple[str, int]]:
        items = []
        for n, line in _lines(path):
            parts = line.split()
            if len(parts) not in (1, 2) or (need_label and len(parts) != 2):
                want = "'<Class>/<video>.avi <label>'" if need_label else "'<Class>/<video>.avi'"
                raise SplitFormatError(f"{path}:{n}: expected {want}, got {line!r}")
            rel = parts[0]
            folder = rel.split("/")[0] if "/" in rel else None
            if folder not in index:
                raise SplitFormatError(
                    f"{path}:{n}: folder of {rel!r} is not a class in {ind.name}"
                )
            label = index[folder]
            if len(parts) == 2 and (not parts[1].isdigit() or int(parts[1]) - 1 != label):
                raise SplitFormatError(
                    f"{path}:{n}: label {parts[1]} disagrees with folder {folder!r} "
                    f"(class {label + 1} in {ind.name})"
                )
            items.append((rel, label))
        return items

    train = parse(split_dir / f"trainlist{split:02d}.txt", need_label=True)
    test = parse(split_dir / f"testlist{split:02d}.txt", need_label=False)
    _no_overlap(train, test, split_dir)
    return Split(classes, train, test)


_HMDB_FILE = re.compile(r"^(?P<cls>.+)_test_split(?P<split>[123])\.txt$")


def hmdb51(split_dir: str | Path, split: int = 1) -> Split:
    """HMDB51 ``testTrainMulti_7030_splits``: ``<class>_test_split<N>.txt`` per class and split.

    Lines are ``"<video>.avi <0|1|2> "`` (1 train, 2 test, 0 unused; note the trailing space).
    HMDB51 has no official class index and two orders circulate (plain sorted, and one that puts
    ``kick_ball`` before ``kick`` and ``sword_exercise`` before ``sword``); we use plain sorted
    order of the class names, the one that needs no extra file. Paths are
    ``<class>/<video>.avi``, the layout of the extracted per-class archives.
    """
    split_dir = Path(split_dir)
    _check_split_number(split)
    files: dict[str, Path] = {}
    for path in split_dir.iterdir() if split_dir.is_dir() else ():
        m = _HMDB_FILE.match(path.name)
        if m and int(m["split"]) == split:
            files[m["cls"]] = path
    if not files:
        raise FileNotFoundError(f"no *_test_split{split}.txt files in {split_dir}")
    classes = sorted(files)
    train: list[tuple[str, int]] = []
    test: list[tuple[str, int]] = []
    for label, cls in enumerate(classes):
        for n, line in _lines(files[cls]):
            parts = line.split()
            if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
                raise SplitFormatError(
                    f"{files[cls]}:{n}: expected '<video>.avi <0|1|2>', got {line!r}"
                )
            if parts[1] != "0":
                (train if parts[1] == "1" else test).append((f"{cls}/{parts[0]}", label))
    _no_overlap(train, test, split_dir)
    return Split(classes, train, test)


_K400_COLUMNS = ("label", "youtube_id", "time_start", "time_end")


def _kinetics_rows(path: Path) -> list[tuple[int, dict[str, str]]]:
    with path.open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in _K400_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise SplitFormatError(
                f"{path}:1: header lacks {', '.join(missing)} (have {reader.fieldnames})"
            )
        return [(reader.line_num, row) for row in reader]


def kinetics400(split_dir: str | Path) -> Split:
    """Kinetics-400 annotation CSVs ``label,youtube_id,time_start,time_end,split``.

    ``train.csv`` (when present) gives ``train``, ``validate.csv`` gives ``val``; ``test.csv`` has
    no labels and is ignored. Classes come from ``classes.txt`` when present, else the sorted
    labels. Paths follow the usual Kinetics download-tool naming (ActivityNet crawler and its
    forks): ``<label>/<youtube_id>_<time_start:06d>_<time_end:06d>.mp4``.
    """
    split_dir = Path(split_dir)
    parts = {"train": split_dir / "train.csv", "val": split_dir / "validate.csv"}
    rows = {k: _kinetics_rows(p) for k, p in parts.items() if p.is_file()}
    if not rows:
        raise FileNotFoundError(f"neither train.csv nor validate.csv in {split_dir}")
    if (split_dir / "classes.txt").is_file():
        classes = [line for _, line in _lines(split_dir / "classes.txt")]
    else:
        classes = sorted({r["label"] for part in rows.values() for _, r in part})
    index = {c: i for i, c in enumerate(classes)}
    out: dict[str, list[tuple[str, int]]] = {"train": [], "val": []}
    for part, part_rows in rows.items():
        for n, r in part_rows:
            try:
                start, end = int(r["time_start"]), int(r["time_end"])
            except (TypeError, ValueError):
                raise SplitFormatError(
                    f"{parts[part]}:{n}: time_start/time_end must be integers, got "
                    f"{r['time_start']!r}, {r['time_end']!r}"
                ) from None
            if r["label"] not in index:
                raise SplitFormatError(f"{parts[part]}:{n}: unknown label {r['label']!r}")
            rel = f"{r['label']}/{r['youtube_id']}_{start:06d}_{end:06d}.mp4"
            out[part].append((rel, index[r["label"]]))
    return Split(classes, out["train"], [], out["val"])


def mentioned(name: str, split_dir: str | Path) -> set[str]:
    """Every video ``name``'s split files in ``split_dir`` name, in any split or part (HMDB51's
    unused ``0`` lines included): relative paths for UCF101 / HMDB51 / synthetic, YouTube ids
    for Kinetics-400 (train, validate and test CSVs)."""
    split_dir = Path(split_dir)
    out: set[str] = set()
    if name == "kinetics400":
        for path in sorted(split_dir.glob("*.csv")):
            with path.open(encoding="utf-8-sig", newline="") as fh:
                out.update(row.get("youtube_id") or "" for row in csv.DictReader(fh))
        return out - {""}
    if name == "hmdb51":
        for path in sorted(split_dir.glob("*_test_split*.txt")):
            cls = _HMDB_FILE.match(path.name)
            if cls:
                out.update(f"{cls['cls']}/{line.split()[0]}" for _, line in _lines(path))
        return out
    for path in sorted(split_dir.glob("*list0*.txt")):  # UCF101 train/test lists
        out.update(line.split()[0] for _, line in _lines(path))
    return out


def load(name: str, split_dir: str | Path, split: int = 1) -> Split:
    """Parse ``name``'s split files in ``split_dir`` (``synthetic`` has UCF101's layout)."""
    if name in ("ucf101", "synthetic"):
        return ucf101(split_dir, split)
    if name == "hmdb51":
        return hmdb51(split_dir, split)
    if name == "kinetics400":
        return kinetics400(split_dir)
    raise ValueError(f"unknown dataset {name!r}; allowed: {', '.join(DATASETS)}")
