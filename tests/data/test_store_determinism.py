"""The h264 store is byte-deterministic: the same source and config give the same file.

Before the fix, x264's AVX-512 mbtree code read memory that x264 allocates but never writes, so
the bytes depended on what the heap held (docs/data.md, "Byte-identical stores"), and its "auto"
thread count made them depend on the CPUs a process may use. The sequential test fills x264's
allocations with changing bytes through an LD_PRELOAD shim (``fill_memalign.c``) instead of
hoping the heap varies; on this project's AVX-512 host the old writer gave 5 different files in
its 40 encodes at short side 32. The side-by-side test runs two plain processes at once, one of
them limited to one CPU (the old writer's files at short side 128 differed between the two).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest

from sstl.config import StoreConfig
from sstl.data import store
from sstl.data.store import StoreReader, write_store
from sstl.data.synthetic import write_video
from sstl.data.synthetic_render import render_video, sample_appearance

# 320x240 -> 42x32, 86x64 and 170x128: widths of 3, 6 and 11 macroblocks, none a multiple of 8
CLIP = "ucf101/v_ApplyEyeMakeup_g01_c01.avi"

# Writes each (source, short side) ``repeat`` times into one folder; prints the sha256 of each.
_WRITER = """
import hashlib, json, os, sys
from pathlib import Path
jobs, out, cpus = json.loads(sys.argv[1]), Path(sys.argv[2]), json.loads(sys.argv[3])
if cpus:
    os.sched_setaffinity(0, cpus)  # before any library starts threads
from sstl.config import StoreConfig
from sstl.data.store import write_store
hashes = []
for src, side, repeat in jobs:
    for _ in range(repeat):
        write_store(src, out / "s.mp4", StoreConfig(short_side=side))
        hashes.append(hashlib.sha256((out / "s.mp4").read_bytes()).hexdigest())
print(json.dumps(hashes))
"""


def _start_writer(jobs: list, out: Path, env: dict | None = None, cpus: list | None = None):
    out.mkdir(parents=True)
    return subprocess.Popen(
        [sys.executable, "-c", _WRITER, json.dumps(jobs), str(out), json.dumps(cpus or [])],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )


def _hashes(proc: subprocess.Popen, jobs: list) -> dict[tuple[str, int], set[str]]:
    """(source, short side) -> the distinct sha256 of its store files."""
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr[-2000:]
    flat = iter(json.loads(stdout))
    return {(Path(src).name, side): {next(flat) for _ in range(n)} for src, side, n in jobs}


@pytest.fixture(scope="module")
def synthetic_clip(tmp_path_factory) -> Path:
    """A 64x64 demo-style synthetic AVI (48 frames): its store at short side 32 is 32x32."""
    rng = np.random.default_rng(0)
    path = tmp_path_factory.mktemp("synthetic") / "orbit.avi"
    write_video(path, render_video("OrbitClockwise", sample_appearance(rng), 48, 64, rng), 25)
    return path


def test_sequential_encodes_give_one_file_whatever_the_heap_holds(
    sample_videos, synthetic_clip, fill_memalign, tmp_path
):
    clip = str(sample_videos[CLIP][0])
    jobs = [[clip, 32, 40], [clip, 64, 6], [clip, 128, 3], [str(synthetic_clip), 32, 10]]
    # each x264 allocation gets the next of these bytes: every encode sees other leftovers
    env = {"LD_PRELOAD": str(fill_memalign), "FILL": "0x00,0xff,0x80,0x01,0x7f,0xfe,0x40,0xc0"}
    got = _hashes(_start_writer(jobs, tmp_path / "out", env), jobs)
    assert {job: len(h) for job, h in got.items()} == dict.fromkeys(got, 1)


def test_side_by_side_processes_write_the_same_files(sample_videos, synthetic_clip, tmp_path):
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        pytest.skip("needs 2 CPUs: one writer is limited to one CPU, the other uses all")
    clip = str(sample_videos[CLIP][0])
    jobs = [[clip, 32, 5], [clip, 64, 3], [clip, 128, 3], [str(synthetic_clip), 32, 3]]
    procs = [
        _start_writer(jobs, tmp_path / f"p{k}", cpus=cpus[:1] if k == 0 else None) for k in range(2)
    ]
    runs = [_hashes(p, jobs) for p in procs]
    for job in runs[0]:
        assert len(set().union(*(run[job] for run in runs))) == 1, job


def test_plain_c_x264_writes_the_same_bytes(sample_videos, tmp_path, monkeypatch):
    """x264 without SIMD (asm=0) stands for any CPU: the bytes must not depend on it."""
    src, cfg = sample_videos[CLIP][0], StoreConfig(short_side=64)
    write_store(src, tmp_path / "simd.mp4", cfg)
    monkeypatch.setattr(store, "_X264_EXACT", store._X264_EXACT + ":asm=0")
    write_store(src, tmp_path / "c.mp4", cfg)
    assert (tmp_path / "simd.mp4").read_bytes() == (tmp_path / "c.mp4").read_bytes()
    assert StoreReader(tmp_path / "c.mp4").revision == store.STORE_REVISION["h264"]


def test_store_from_before_the_fix_still_reads():
    """A store written by the h264 writer of revision 1 (before the fix) reads as it did then."""
    path = Path(__file__).with_name("fixtures") / "store_rev1_h264.mp4"
    reader = StoreReader(path)
    assert reader.revision == 1 and store.STORE_REVISION["h264"] == 2
    assert reader.config == {
        "short_side": 32,
        "codec": "h264",
        "gop": 16,
        "crf": 20,
        "jpeg_quality": 90,
    }
    assert reader.meta == {"source": CLIP}
    assert (reader.num_frames, reader.width, reader.height, reader.fps) == (164, 42, 32, 25.0)
    frames = reader.read(list(range(164))).numpy()
    with av.open(str(path)) as container:
        ref = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
    assert np.array_equal(frames, ref)
    # what the reader of revision 1 returned for these frames, recorded when the file was written
    assert hashlib.sha256(frames.tobytes()).hexdigest() == (
        "f411e0a5aeda157a58f9dea9253bdea76513851cc014846f2dc4c1166a5cba3d"
    )
