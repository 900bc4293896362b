"""Fixtures of the data tests: the real sample videos, broken files, a dataset source, stores,
a small synthetic dataset, and a real HTTP server on 127.0.0.1 that misbehaves on purpose (the
download tests)."""

from __future__ import annotations

import contextlib
import hashlib
import re
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from fractions import Fraction
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import av
import numpy as np
import pytest

from sstl.config import StoreConfig, SyntheticConfig
from sstl.data import synthetic
from sstl.data.store import store_ext, write_store

# The six UCF101 samples become a 6-class UCF101-layout dataset: folder = class.
UCF_CLASSES = ["ApplyEyeMakeup", "Basketball", "CliffDiving", "HeadMassage", "Punch", "Shotput"]


def expected_frames(shared_dir: Path) -> dict[str, int]:
    """file name -> decoded frame count, parsed from the table in shared/videos/README.md."""
    table = {}
    for line in (shared_dir / "videos" / "README.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[4].isdigit():
            table[cells[0]] = int(cells[4])
    return table


@pytest.fixture(scope="session")
def sample_videos(shared_dir: Path) -> dict[str, tuple[Path, int]]:
    """'ucf101/v_...avi' -> (path, decoded frames) for every sample in the README table."""
    table = expected_frames(shared_dir)
    assert len(table) == 9, f"README table parsed to {table}"
    return {name: (shared_dir / "videos" / name, n) for name, n in table.items()}


def make_audio_only(path: Path) -> Path:
    """Half a second of a 440 Hz tone as AAC in an .mp4: a media file without video."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("aac", rate=44100)
        t = np.arange(22050) / 44100
        samples = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None]
        for k in range(0, samples.shape[1], 1024):
            frame = av.AudioFrame.from_ndarray(
                samples[:, k : k + 1024], format="fltp", layout="mono"
            )
            frame.sample_rate, frame.pts, frame.time_base = 44100, k, Fraction(1, 44100)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


@pytest.fixture(scope="session")
def broken_files(tmp_path_factory, shared_dir: Path) -> dict[str, Path]:
    """One file per way a video can fail: kind -> path."""
    root = tmp_path_factory.mktemp("broken")
    punch = (shared_dir / "videos/ucf101/v_Punch_g03_c01.avi").read_bytes()
    basket = (shared_dir / "videos/ucf101/v_Basketball_g01_c02.mp4").read_bytes()
    files = {
        "zero_bytes": root / "zero.avi",
        "truncated_avi": root / "truncated.avi",
        "truncated_m4v": root / "truncated.mp4",
        "text_as_avi": root / "notes.avi",
        "audio_only": root / "audio.mp4",
    }
    files["zero_bytes"].write_bytes(b"")
    files["truncated_avi"].write_bytes(punch[: int(0.3 * len(punch))])
    files["truncated_m4v"].write_bytes(basket[: int(0.3 * len(basket))])
    files["text_as_avi"].write_text("this is not a video\n" * 50)
    make_audio_only(files["audio_only"])
    files["nonexistent"] = root / "no_such_video.avi"
    return files


def _crlf(path: Path, lines: list[str]) -> None:
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode())


@pytest.fixture(scope="session")
def ucf_source(tmp_path_factory, shared_dir: Path) -> Path:
    """A UCF101-layout source: ``videos/<Class>/<file>`` + ``splits/`` (CRLF split files).

    The six real UCF101 samples plus four broken entries: a listed video that is absent, a
    truncated copy, a zero-byte file and a text file named .avi.
    """
    root = tmp_path_factory.mktemp("ucf_source")
    videos = root / "videos"
    real = sorted((shared_dir / "videos" / "ucf101").iterdir())
    rel_of = {}
    for src in real:
        cls = src.name.split("_")[1]
        (videos / cls).mkdir(parents=True, exist_ok=True)
        (videos / cls / src.name).symlink_to(src)
        rel_of[cls] = f"{cls}/{src.name}"
    punch = (shared_dir / "videos/ucf101/v_Punch_g03_c01.avi").read_bytes()
    (videos / "Punch/v_Punch_g99_c01.avi").write_bytes(punch[: int(0.3 * len(punch))])
    (videos / "Shotput/v_Shotput_g99_c01.avi").write_bytes(b"")
    (videos / "HeadMassage/v_HeadMassage_g99_c01.avi").write_text("not a video\n")
    splits = root / "splits"
    splits.mkdir()
    _crlf(splits / "classInd.txt", [f"{i + 1} {c}" for i, c in enumerate(UCF_CLASSES)])
    label = {c: i + 1 for i, c in enumerate(UCF_CLASSES)}
    train = ["ApplyEyeMakeup", "Basketball", "HeadMassage", "Punch"]
    _crlf(
        splits / "trainlist01.txt",
        [f"{rel_of[c]} {label[c]}" for c in train]
        + ["Basketball/v_Basketball_g99_c01.avi 2", "Punch/v_Punch_g99_c01.avi 5"],
    )
    _crlf(
        splits / "testlist01.txt",
        [rel_of["CliffDiving"], rel_of["Shotput"], "Shotput/v_Shotput_g99_c01.avi",
         "HeadMassage/v_HeadMassage_g99_c01.avi"],
    )  # fmt: skip
    return root


@pytest.fixture(scope="session")
def stores(tmp_path_factory, sample_videos) -> dict[str, dict[str, tuple[Path, Path]]]:
    """codec -> sample name -> (source, store file) for three samples of different kinds."""
    names = [
        "ucf101/v_ApplyEyeMakeup_g01_c01.avi",
        "ucf101/v_Basketball_g01_c02.mp4",
        "hmdb51/BASE_Jumping_Compilation_-_Brilliant_dive_f_cm_np1_le_bad_3.mp4",
    ]
    out: dict[str, dict[str, tuple[Path, Path]]] = {}
    for codec in ("h264", "jpeg"):
        root = tmp_path_factory.mktemp(f"store_{codec}")
        out[codec] = {}
        for name in names:
            src = sample_videos[name][0]
            dst = root / (re.sub(r"\W", "_", Path(name).stem) + store_ext(codec))
            write_store(src, dst, StoreConfig(codec=codec))
            out[codec][name] = (src, dst)
    return out


@pytest.fixture(scope="session")
def fill_memalign(tmp_path_factory, c_compiler: str) -> Path:
    """fill_memalign.so: LD_PRELOAD it with $FILL set to choose what x264's memory holds."""
    out = tmp_path_factory.mktemp("shim") / "fill_memalign.so"
    src = Path(__file__).with_name("fill_memalign.c")
    subprocess.run([c_compiler, "-O2", "-shared", "-fPIC", "-o", out, src, "-ldl"], check=True)
    return out


# --- the synthetic dataset ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_cfg() -> SyntheticConfig:
    # 5 test videos per class: two test groups (g01 c01-c04, g02 c01), train from g03 on.
    return SyntheticConfig(
        classes=3, train_per_class=2, test_per_class=5, frames=16, size=32, fps=25, seed=3
    )


@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory, small_cfg) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("synthetic")
    summary = synthetic.generate(out, small_cfg, progress=False)
    return out, summary


@pytest.fixture(scope="module")
def rendered() -> tuple[np.ndarray, np.ndarray]:
    """8 classes x 20 videos of 48 frames at 64 px: ``[N, T, H, W, 3] uint8`` and labels ``[N]``."""
    videos, labels = [], []
    for c in range(8):
        for i in range(20):
            rng = np.random.default_rng([11, c, i])
            app = synthetic.sample_appearance(rng)
            videos.append(synthetic.render_video(synthetic.MOTIONS[c], app, 48, 64, rng))
            labels.append(c)
    return np.stack(videos), np.array(labels)


# --- a real HTTP server that can misbehave on purpose (download tests) ----------------------------


@dataclass
class Behaviour:
    """How the server misbehaves; the ``*_first`` counts apply to the first requests only."""

    files: dict[str, bytes] = field(default_factory=dict)
    fail_first: int = 0  # answer 503 to this many requests
    drop_first: int = 0  # cut the connection after drop_after body bytes, this many times
    drop_after: int = 0
    ignore_range: bool = False  # answer 200 with the whole file even to a Range request
    stall_first: int = 0  # sleep stall_s before answering, this many times
    stall_s: float = 0.0
    no_length: bool = False  # no Content-Length: the body ends when the connection closes
    validators: bool = True  # send an ETag (and honour If-Range: a mismatch gets the whole file)
    content_type: str = "application/octet-stream"
    swap_at: int = -1  # from this request on, serve swap_to instead (the file changed)
    swap_to: dict[str, bytes] = field(default_factory=dict)
    requests: list[dict[str, str]] = field(default_factory=list)  # headers of each request
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Handler(BaseHTTPRequestHandler):
    behaviour: Behaviour

    def log_message(self, *args: object) -> None:  # keep pytest output clean
        pass

    def do_GET(self) -> None:
        b = self.server.behaviour  # type: ignore[attr-defined]
        with b.lock:
            n = len(b.requests)
            b.requests.append({k.lower(): v for k, v in self.headers.items()})
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self._answer(b, n)  # the client may have given up (timeout test)

    def _answer(self, b: Behaviour, n: int) -> None:
        if n < b.stall_first:
            time.sleep(b.stall_s)
        if n < b.fail_first:
            self.send_error(503, "try later")
            return
        if 0 <= b.swap_at <= n:
            b.files.update(b.swap_to)
        data = b.files.get(self.path)
        if data is None:
            self.send_error(404)
            return
        start, status = 0, 200
        etag = f'"{hashlib.sha256(data).hexdigest()[:16]}"'
        rng = self.headers.get("Range")
        if_range = self.headers.get("If-Range")
        if if_range is not None and (not b.validators or if_range != etag):
            rng = None  # RFC 9110: a stale validator gets the whole (current) file
        if rng and not b.ignore_range:
            start = int(rng.removeprefix("bytes=").split("-")[0])
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            status = 206
        body = data[start:]
        self.send_response(status)
        if not b.no_length:
            self.send_header("Content-Length", str(len(body)))
        self.send_header("Content-Type", b.content_type)
        if b.validators:
            self.send_header("ETag", etag)
        self.send_header("Accept-Ranges", "bytes")
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.end_headers()
        if n < b.drop_first:
            self.wfile.write(body[: b.drop_after])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)  # short read on the client
            self.close_connection = True
            return
        self.wfile.write(body)


@dataclass
class LocalServer:
    url: str
    behaviour: Behaviour


@pytest.fixture
def http_server():
    """``LocalServer``: set ``behaviour.files['/name'] = bytes`` and GET ``url + '/name'``."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    server.behaviour = Behaviour()  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    host, port = server.server_address[:2]
    yield LocalServer(f"http://{host}:{port}", server.behaviour)  # type: ignore[attr-defined]
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)
