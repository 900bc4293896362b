"""Where each listed video is in a dataset's ``videos/`` folder, whatever the copy's layout.

Copies of the same dataset are laid out differently, so the split files' relative paths are
matched leniently:

- UCF101 / HMDB51: ``<Class>/<file>`` as the split files list it; the same file name with
  another video container (``.mp4``, ``.mkv``, ... for a listed ``.avi``) matches too.
- Kinetics-400: by YouTube id, anywhere under the folder: label folders with spaces or
  underscores (or any other name), flat split folders (``train/``, ``val/``), any container. A
  file is ``<youtube_id>[_<start>_<end>].<ext>``; a start and end in the name must equal the
  listed segment. A video found twice is taken from its label's folder first, then as ``.mp4``,
  then in path order.

:func:`locate` returns the path of every listed video found, the video files no split file
names (so a copy one folder too high, or named another way, is visible at once), and a hint
when the listed videos sit one folder deeper than ``videos/``.
"""

from __future__ import annotations

import csv
import os
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from sstl.data.splits import Split

VIDEO_SUFFIXES = {".avi", ".mp4", ".mkv", ".webm", ".mov", ".m4v"}
# flat Kinetics copies keep each split part in its own folder, named in one of these ways
_PART_FOLDERS = {"train": {"train", "training"}, "val": {"val", "validate", "validation"}}
_PART_FOLDERS["test"] = {"test", "testing"}
# Kinetics cuts are named <youtube_id>_<start>_<end> (seconds; ids may contain "_" and "-")
_SEGMENT = re.compile(r"^(?P<id>.+)_(?P<start>\d+)_(?P<end>\d+)$")


@dataclass
class Located:
    """Listed relative path -> found relative path (both under ``videos/``), and what is left."""

    paths: dict[str, str] = field(default_factory=dict)
    unlisted: list[str] = field(default_factory=list)  # video files no split file names
    duplicates: int = 0  # listed videos found more than once (one copy is used)
    hint: str = ""  # how to fix the local path, when the files suggest it


def video_files(root: str | os.PathLike) -> list[str]:
    """Relative POSIX paths of every video file under ``root`` (any depth, symlinks followed
    once), sorted."""
    root = Path(root)
    out, seen = [], set()
    for folder, dirs, files in os.walk(root, followlinks=True):
        st = os.stat(folder)
        if (st.st_dev, st.st_ino) in seen:  # a symlink loop
            dirs[:] = []
            continue
        seen.add((st.st_dev, st.st_ino))
        dirs.sort()
        rel = Path(folder).relative_to(root)
        out += [
            (rel / name).as_posix() for name in files if Path(name).suffix.lower() in VIDEO_SUFFIXES
        ]
    return sorted(out)


def youtube_key(rel: str, known: set[str]) -> tuple[str, int | None, int | None] | None:
    """``(youtube id, start, end)`` of a Kinetics file name whose id is in ``known`` (start and
    end None when the name has no segment), else None."""
    stem = PurePosixPath(rel).stem
    if stem in known:
        return stem, None, None
    m = _SEGMENT.match(stem)
    if m and m["id"] in known:
        return m["id"], int(m["start"]), int(m["end"])
    return None


def _folder_key(name: str) -> str:
    """Label folder names compare without case, spaces vs underscores, quotes, brackets."""
    return re.sub(r"[\s_'\"()]+", " ", name).strip().lower()


def _locate_kinetics(split: Split, files: list[str], known: set[str]) -> Located:
    by_id: dict[str, list[tuple[str, int | None, int | None]]] = defaultdict(list)
    out = Located()
    for rel in files:
        key = youtube_key(rel, known)
        if key is None:
            out.unlisted.append(rel)
        else:
            by_id[key[0]].append((rel, key[1], key[2]))
    for part, items in split.parts().items():
        for listed, label in items:
            m = _SEGMENT.match(PurePosixPath(listed).stem)  # <label>/<id>_<start>_<end>.mp4
            ytid, start, end = m["id"], int(m["start"]), int(m["end"])
            found = [
                rel for rel, s, e in by_id.get(ytid, ()) if s is None or (s, e) == (start, end)
            ]
            if not found:
                continue
            label_dir = _folder_key(split.classes[label]) if 0 <= label < len(split.classes) else ""

            def rank(rel: str, label_dir: str = label_dir, part: str = part) -> tuple:
                parent = _folder_key(PurePosixPath(rel).parent.name)
                own = parent == label_dir or parent in _PART_FOLDERS[part]
                return (not own, not rel.endswith(".mp4"), rel)

            out.paths[listed] = min(found, key=rank)
            out.duplicates += len(found) > 1
    return out


def _locate_by_path(split: Split, files: list[str], known: set[str]) -> Located:
    """UCF101 / HMDB51: the listed path, or the same stem with another container."""
    present = set(files)
    by_stem: dict[str, list[str]] = defaultdict(list)
    for rel in files:
        by_stem[str(PurePosixPath(rel).with_suffix(""))].append(rel)
    out = Located()
    for items in split.parts().values():
        for listed, _ in items:
            if listed in present:
                out.paths[listed] = listed
                continue
            found = sorted(by_stem.get(str(PurePosixPath(listed).with_suffix("")), ()))
            if found:
                out.paths[listed] = found[0]
                out.duplicates += len(found) > 1
    named = {str(PurePosixPath(k).with_suffix("")) for k in known}
    out.unlisted = [rel for rel in files if str(PurePosixPath(rel).with_suffix("")) not in named]
    # a copy one folder too high: the listed paths appear below one extra folder
    deeper: dict[str, int] = defaultdict(int)
    for rel in out.unlisted:
        top, _, rest = rel.partition("/")
        if rest and str(PurePosixPath(rest).with_suffix("")) in named:
            deeper[top] += 1
    if deeper and not out.paths:
        top = max(sorted(deeper), key=deeper.__getitem__)
        out.hint = f"{deeper[top]} listed videos are one folder deeper, under '{top}/'"
    return out


def read_located(path: str | os.PathLike) -> dict[str, str] | None:
    """``sstl fetch``'s ``located.csv`` (listed path -> found path), None when there is none
    (a generated source: the listed paths are the files)."""
    path = Path(path)
    if not path.is_file():
        return None
    with path.open(newline="") as fh:
        return {row["listed"]: row["path"] for row in csv.DictReader(fh)}


def write_located(path: str | os.PathLike, located: Located) -> None:
    """``located.csv``: ``listed,path`` rows (relative to ``videos/``), sorted."""
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["listed", "path"])
        writer.writerows(sorted(located.paths.items()))


def locate(name: str, split: Split, files: list[str], known: set[str]) -> Located:
    """Match ``split``'s listed videos to ``files`` (relative paths under ``videos/``).

    ``known``: what the dataset's split files name in any split or part (listed relative paths
    for UCF101 / HMDB51, YouTube ids for Kinetics-400), so a video of another split is not
    reported as unlisted.
    """
    if name == "kinetics400":
        return _locate_kinetics(split, files, known)
    return _locate_by_path(split, files, known)
