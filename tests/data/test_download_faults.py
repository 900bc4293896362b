"""Downloads that must never end corrupt: a server that changes the file, sends no length, serves
HTML; an existing file that is not what was downloaded. Against the real local HTTP server."""

from __future__ import annotations

import hashlib
import json
import os

import pytest

from sstl.data.download import DownloadError, download

V1 = b"Rar!\x1a\x07\x00" + os.urandom(200_000)
V2 = b"Rar!\x1a\x07\x00" + os.urandom(200_000)  # the same file, updated on the server
FAST = {"backoff": 0.01, "timeout": 5, "chunk": 8192, "progress": False}
HTML = b"<!DOCTYPE html>\n<html><head><title>Log in</title></head><body>Please log in</body></html>"


@pytest.fixture
def served(http_server):
    http_server.behaviour.files["/UCF101.rar"] = V1
    return http_server


def _url(server) -> str:
    return f"{server.url}/UCF101.rar"


# --- the file changes on the server between attempts ------------------------------------------


def test_file_changed_between_attempts_is_downloaded_again_not_spliced(served, tmp_path):
    b = served.behaviour
    b.drop_first, b.drop_after = 1, 80_000
    b.swap_at, b.swap_to = 1, {"/UCF101.rar": V2}
    dest = download(_url(served), tmp_path / "UCF101.rar", **FAST)  # no sha256 to catch it
    assert dest.read_bytes() == V2, "the first version's bytes were spliced with the second's"
    first_etag = f'"{hashlib.sha256(V1).hexdigest()[:16]}"'
    assert b.requests[1]["range"] == "bytes=80000-" and b.requests[1]["if-range"] == first_etag


def test_file_changed_between_runs_is_downloaded_again(served, tmp_path):
    b = served.behaviour
    b.drop_first, b.drop_after = 1, 80_000
    with pytest.raises(DownloadError, match="rerun to resume"):
        download(_url(served), tmp_path / "UCF101.rar", retries=0, **FAST)
    b.files["/UCF101.rar"] = V2  # updated before the rerun
    dest = download(_url(served), tmp_path / "UCF101.rar", **FAST)
    assert dest.read_bytes() == V2


def test_server_without_validators_is_never_resumed_blindly(served, tmp_path):
    b = served.behaviour
    b.validators = False
    b.drop_first, b.drop_after = 1, 80_000
    b.swap_at, b.swap_to = 1, {"/UCF101.rar": V2}
    dest = download(_url(served), tmp_path / "UCF101.rar", **FAST)
    assert dest.read_bytes() == V2
    assert "range" not in b.requests[1]  # nothing to prove the version: started over


# --- no Content-Length ------------------------------------------------------------------------


def test_dropped_connection_without_content_length_is_resumed(served, tmp_path):
    b = served.behaviour
    b.no_length = True
    b.drop_first, b.drop_after = 1, 70_000  # the close looks like a normal end of the body
    dest = download(_url(served), tmp_path / "UCF101.rar", **FAST)
    assert dest.read_bytes() == V1
    assert b.requests[1]["range"] == "bytes=70000-"  # asked what follows the 70,000 bytes


def test_complete_body_without_content_length_is_confirmed(served, tmp_path):
    served.behaviour.no_length = True
    dest = download(_url(served), tmp_path / "UCF101.rar", **FAST)
    assert dest.read_bytes() == V1
    assert len(served.behaviour.requests) == 2  # the body, then a range past its end: 416


def test_no_length_and_no_ranges_fails_clearly_unless_a_sha256_decides(served, tmp_path):
    b = served.behaviour
    b.no_length, b.ignore_range = True, True
    b.drop_first, b.drop_after = 1, 70_000
    with pytest.raises(DownloadError, match="neither the file's length nor byte ranges") as err:
        download(_url(served), tmp_path / "UCF101.rar", **FAST)
    assert "70000 bytes" in str(err.value) and "sha256" in str(err.value)
    assert not (tmp_path / "UCF101.rar").exists()
    b.requests.clear()
    sha = hashlib.sha256(V1).hexdigest()
    dest = download(_url(served), tmp_path / "UCF101.rar", sha, **FAST)
    assert dest.read_bytes() == V1


# --- HTML instead of the archive --------------------------------------------------------------


@pytest.mark.parametrize("body", [HTML, b"\n\n  <html><body>moved</body></html>", b"garbage!" * 99])
def test_html_or_foreign_page_is_never_kept(http_server, tmp_path, body):
    http_server.behaviour.files["/UCF101.rar"] = body
    http_server.behaviour.content_type = "text/html"
    with pytest.raises(DownloadError, match=r"instead of UCF101\.rar") as err:
        download(_url(http_server), tmp_path / "UCF101.rar", retries=3, **FAST)
    assert ("HTML" in str(err.value)) == body.lstrip().startswith(b"<")
    assert list(tmp_path.iterdir()) == []  # no dest, no .part, no record
    assert len(http_server.behaviour.requests) == 1  # not retried


# --- an existing file is verified before "already present" -----------------------------------


def test_existing_html_page_is_replaced(served, tmp_path):
    (tmp_path / "UCF101.rar").write_bytes(HTML)  # kept by an older version of the pipeline
    dest = download(_url(served), tmp_path / "UCF101.rar", **FAST)
    assert dest.read_bytes() == V1 and len(served.behaviour.requests) == 1


@pytest.mark.parametrize("damage", ["truncated", "flipped"])
def test_existing_corrupt_file_is_downloaded_again(served, tmp_path, damage):
    dest = download(_url(served), tmp_path / "UCF101.rar", **FAST)
    record = json.loads((tmp_path / "UCF101.rar.download.json").read_text())
    assert record["size"] == len(V1) and record["sha256"] == hashlib.sha256(V1).hexdigest()
    raw = bytearray(dest.read_bytes())
    if damage == "truncated":
        raw = raw[:150_000]
    else:
        raw[100_000] ^= 0xFF
    dest.write_bytes(bytes(raw))
    download(_url(served), dest, **FAST)
    assert dest.read_bytes() == V1 and len(served.behaviour.requests) == 2
    download(_url(served), dest, **FAST)  # intact now: not fetched a third time
    assert len(served.behaviour.requests) == 2
