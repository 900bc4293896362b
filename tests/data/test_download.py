"""Downloads against a real local HTTP server (127.0.0.1 only) that misbehaves on purpose."""

from __future__ import annotations

import hashlib
import os
import time

import pytest

from sstl.data.download import ChecksumError, DownloadError, download

DATA = b"Rar!\x1a\x07\x00" + os.urandom(300_000)  # starts like the RAR it is served as
SHA = hashlib.sha256(DATA).hexdigest()
FAST = {"backoff": 0.01, "timeout": 5, "chunk": 8192, "progress": False}


@pytest.fixture
def served(http_server):
    http_server.behaviour.files["/UCF101.rar"] = DATA
    return http_server


def test_full_download_verifies_and_renames(served, tmp_path):
    dest = download(f"{served.url}/UCF101.rar", tmp_path / "UCF101.rar", SHA, **FAST)
    assert dest.read_bytes() == DATA
    assert not (tmp_path / "UCF101.rar.part").exists()
    assert "range" not in served.behaviour.requests[0]
    # A second call finds the verified file and does not fetch again.
    download(f"{served.url}/UCF101.rar", dest, SHA, **FAST)
    assert len(served.behaviour.requests) == 1


def test_resume_after_dropped_connection(served, tmp_path):
    served.behaviour.drop_first, served.behaviour.drop_after = 1, 100_000
    dest = download(f"{served.url}/UCF101.rar", tmp_path / "x.rar", SHA, **FAST)
    reqs = served.behaviour.requests
    assert len(reqs) == 2
    assert reqs[1]["range"] == "bytes=100000-"  # continued the .part, did not start over
    assert dest.read_bytes() == DATA


def test_resume_across_calls_from_part_file(served, tmp_path):
    served.behaviour.drop_first, served.behaviour.drop_after = 1, 12345
    with pytest.raises(DownloadError, match="rerun to resume"):
        download(f"{served.url}/UCF101.rar", tmp_path / "x.rar", SHA, retries=0, **FAST)
    assert (tmp_path / "x.rar.part").stat().st_size == 12345
    dest = download(f"{served.url}/UCF101.rar", tmp_path / "x.rar", SHA, **FAST)
    assert served.behaviour.requests[1]["range"] == "bytes=12345-"
    assert dest.read_bytes() == DATA


def test_complete_part_file_answered_416(served, tmp_path):
    (tmp_path / "x.rar.part").write_bytes(DATA)
    dest = download(f"{served.url}/UCF101.rar", tmp_path / "x.rar", SHA, **FAST)
    assert dest.read_bytes() == DATA
    assert len(served.behaviour.requests) == 1


def test_server_ignoring_range_restarts_cleanly(served, tmp_path):
    served.behaviour.ignore_range = True
    served.behaviour.drop_first, served.behaviour.drop_after = 1, 5000
    dest = download(f"{served.url}/UCF101.rar", tmp_path / "x.rar", SHA, **FAST)
    assert "range" in served.behaviour.requests[1]
    assert dest.read_bytes() == DATA  # not the first 5000 bytes + the whole file


def test_part_without_a_record_is_not_continued(served, tmp_path):
    (tmp_path / "x.rar.part").write_bytes(b"stale bytes of an unknown version")
    dest = download(f"{served.url}/UCF101.rar", tmp_path / "x.rar", **FAST)
    assert "range" not in served.behaviour.requests[0]
    assert dest.read_bytes() == DATA


def test_503_then_success(served, tmp_path):
    served.behaviour.fail_first = 3
    dest = download(f"{served.url}/UCF101.rar", tmp_path / "x.rar", SHA, retries=3, **FAST)
    assert len(served.behaviour.requests) == 4
    assert dest.read_bytes() == DATA


def test_retries_exhausted(served, tmp_path):
    served.behaviour.fail_first = 100
    with pytest.raises(DownloadError, match="after 2 retries: HTTP 503"):
        download(f"{served.url}/UCF101.rar", tmp_path / "x.rar", retries=2, **FAST)
    assert len(served.behaviour.requests) == 3
    assert not (tmp_path / "x.rar").exists()


def test_404_is_not_retried(served, tmp_path):
    with pytest.raises(DownloadError, match="HTTP 404"):
        download(f"{served.url}/nope.rar", tmp_path / "x.rar", retries=3, **FAST)
    assert len(served.behaviour.requests) == 1


def test_checksum_mismatch_deletes_file(served, tmp_path):
    wrong = "0" * 64
    with pytest.raises(ChecksumError) as info:
        download(f"{served.url}/UCF101.rar", tmp_path / "x.rar", wrong, **FAST)
    assert info.value.expected == wrong and info.value.got == SHA
    assert wrong in str(info.value) and SHA in str(info.value)
    assert list(tmp_path.iterdir()) == []  # neither dest nor .part is left


def test_timeout_then_retry_succeeds(served, tmp_path):
    served.behaviour.stall_first, served.behaviour.stall_s = 1, 2.0
    t0 = time.monotonic()
    opts = {**FAST, "timeout": 0.3}
    dest = download(f"{served.url}/UCF101.rar", tmp_path / "x.rar", SHA, retries=1, **opts)
    assert dest.read_bytes() == DATA
    assert len(served.behaviour.requests) == 2
    assert time.monotonic() - t0 < 1.9  # gave up on the stalled request, did not wait it out


def test_timeout_exhausted(served, tmp_path):
    served.behaviour.stall_first, served.behaviour.stall_s = 5, 1.0
    opts = {**FAST, "timeout": 0.2}
    with pytest.raises(DownloadError, match="Timeout"):
        download(f"{served.url}/UCF101.rar", tmp_path / "x.rar", retries=0, **opts)
