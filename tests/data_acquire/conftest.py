"""A real HTTP server on 127.0.0.1 that can misbehave on purpose, for the download tests."""

from __future__ import annotations

import contextlib
import hashlib
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


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
