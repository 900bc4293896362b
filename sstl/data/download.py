"""Resumable HTTP(S) download with retries, sha256 verification and an atomic final rename.

Bytes go to ``<dest>.part``; a later call (or a retry) continues it with ``Range`` plus
``If-Range`` carrying the validator (ETag / Last-Modified) the server gave the first time, so a
file that changed on the server meanwhile is downloaded again from the start, never spliced.
Bytes without a recorded validator are never continued. A body that ends without the server
having said how long the file is gets checked with one more range request; an HTML page or a
file that does not start like its archive format is refused at its first bytes. Only a complete
file is renamed to ``dest``, with its size and sha256 recorded beside it
(:class:`~sstl.data.download_check.Record`), so a later call re-verifies ``dest`` before calling
it "already present".
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import requests
import urllib3
from tqdm import tqdm

from sstl.data.download_check import (
    HEAD_BYTES,
    Record,
    check_existing,
    sniff,
    sniff_file,
)
from sstl.files import sha256_file

log = logging.getLogger(__name__)

__all__ = ["ChecksumError", "DownloadError", "download"]


class DownloadError(RuntimeError):
    """The download failed for good (retries exhausted or a non-retryable HTTP status)."""


class ChecksumError(DownloadError):
    """The downloaded file's sha256 is not the expected one (the file has been deleted)."""

    def __init__(self, path: Path, expected: str, got: str) -> None:
        super().__init__(f"sha256 mismatch for {path}: expected {expected}, got {got}")
        self.path, self.expected, self.got = path, expected, got


class _Retryable(Exception):
    """One attempt failed in a way that another attempt may fix; ``received``: its new bytes."""

    def __init__(self, message: str, received: int = 0) -> None:
        super().__init__(message)
        self.received = received


# Errors of the connection, not of the disk: a full disk must not be retried.
_NETWORK_ERRORS = (
    requests.RequestException,
    urllib3.exceptions.HTTPError,
    ConnectionError,
    TimeoutError,
)


def _content_range(resp: requests.Response) -> tuple[int | None, int | None]:
    """(start, total) from ``Content-Range: bytes a-b/total`` (or ``bytes */total``)."""
    value = resp.headers.get("Content-Range", "")
    if not value.startswith("bytes "):
        return None, None
    span, _, total = value[6:].partition("/")
    start = int(span.split("-")[0]) if span[:1].isdigit() else None
    return start, int(total) if total.isdigit() else None


class _Transfer:
    """The state of one file's download across attempts: its ``.part``, record and URL."""

    def __init__(self, url: str, dest: Path, timeout: float, chunk: int, progress: bool) -> None:
        self.url, self.dest = url, dest
        self.part = dest.with_name(dest.name + ".part")
        self.timeout, self.chunk, self.progress = timeout, chunk, progress
        self.record = Record.load(dest) or Record(url)

    def restart(self, why: str) -> None:
        log.warning("%s: %s; downloading it again from the start", self.url, why)
        self.part.unlink(missing_ok=True)
        self.record = Record(self.url)

    def attempt(self, session: requests.Session, sha256: str | None) -> bool:
        """One GET continuing the part. True: complete. False: the body ended without any way
        to tell its length (call again: the next request asks the server what follows).
        Raises _Retryable or DownloadError."""
        have = self.part.stat().st_size if self.part.exists() else 0
        if have and self.record.validator() is None:
            self.restart(f"no ETag or Last-Modified tells which version of it {self.part} holds")
            have = 0
        # identity: byte offsets must be those of the file, not of a gzip-encoded body.
        headers = {"Accept-Encoding": "identity"}
        if have:
            headers["Range"] = f"bytes={have}-"
            headers["If-Range"] = self.record.validator()
        try:
            resp = session.get(
                self.url, headers=headers, stream=True, timeout=(self.timeout, self.timeout)
            )
        except _NETWORK_ERRORS as err:
            raise _Retryable(f"{type(err).__name__}: {err}") from err
        with resp:
            return self._answer(resp, have, sha256)

    def _answer(self, resp: requests.Response, have: int, sha256: str | None) -> bool:
        status = resp.status_code
        start, total = _content_range(resp)
        length = resp.headers.get("Content-Length")
        if status == 416 and have:
            if total == have:  # the .part is already complete
                return True
            self.restart(f"the server refused range {have}- (its file has {total} bytes)")
            raise _Retryable(f"HTTP 416 for range {have}- (server size {total})")
        if status >= 500 or status == 429:
            raise _Retryable(f"HTTP {status} {resp.reason}")
        if status not in (200, 206):
            raise DownloadError(f"GET {self.url} failed with HTTP {status} {resp.reason}")
        if status == 206:
            if start != have:
                self.restart(f"asked for bytes {have}- but got Content-Range offset {start}")
                raise _Retryable(f"Content-Range offset {start} instead of {have}")
            changed = None not in (total, self.record.total) and total != self.record.total
            if changed or self._changed(resp):
                self.restart("the file changed on the server since the first bytes came")
                raise _Retryable("the file changed on the server")
            expected = total
        else:
            if have and not self._changed(resp):
                if length is not None and int(length) == have:
                    return True  # asked what follows; the whole file is what we have
                if length is None:  # no ranges, no length: nothing can confirm the part
                    return self._unconfirmed(have, sha256)
            if have:
                self.restart("the server sent the whole file (it changed, or ignores ranges)")
                have = 0
            self.record = Record(
                self.url,
                etag=resp.headers.get("ETag"),
                last_modified=resp.headers.get("Last-Modified"),
                total=int(length) if length is not None else None,
            )
            self.record.save(self.dest)  # before the first byte: a resume knows the version
            expected = self.record.total
        received = self._stream(resp, have, expected)
        if expected is not None:
            if have + received != expected:
                raise _Retryable(f"short read: {have + received} of {expected} bytes", received)
            return True
        if resp.raw.chunked:  # a chunked body's framing proves it complete
            return True
        if received == 0:  # asked what follows and got nothing, without a length
            return self._unconfirmed(have, sha256)
        return False  # close-delimited: the next request asks the server what follows

    def _changed(self, resp: requests.Response) -> bool:
        """Whether the response's validators name another version than the recorded one."""
        rec = self.record
        etag, modified = resp.headers.get("ETag"), resp.headers.get("Last-Modified")
        return (etag is not None and rec.etag is not None and etag != rec.etag) or (
            modified is not None and rec.last_modified is not None and modified != rec.last_modified
        )

    def _unconfirmed(self, have: int, sha256: str | None) -> bool:
        """Nothing tells whether the part is whole: its checksum decides, or the download fails."""
        if sha256 is None:
            raise DownloadError(
                f"GET {self.url}: the server gives neither the file's length nor byte ranges, so "
                f"nothing tells whether the {have} bytes received are the whole file. Give its "
                f"sha256 (datasets.<name>.sha256) to accept it; {self.part} is kept"
            )
        if sha256_file(self.part) == sha256:
            return True
        self.restart("the bytes received do not match the sha256 and the server cannot resume")
        raise _Retryable("incomplete, restarting")

    def _stream(self, resp: requests.Response, have: int, expected: int | None) -> int:
        received = 0
        bar = tqdm(
            total=expected,
            initial=have,
            unit="B",
            unit_scale=True,
            desc=self.dest.name,
            disable=not self.progress,
            leave=False,
        )
        try:
            with self.part.open("ab" if have else "wb") as fh:
                for block in resp.raw.stream(self.chunk, decode_content=False):
                    if have + received < HEAD_BYTES:
                        fh.flush()
                        self._check_head(have + received, block)
                    fh.write(block)
                    received += len(block)
                    bar.update(len(block))
        except _NETWORK_ERRORS as err:
            raise _Retryable(f"connection lost after {received} bytes: {err}", received) from err
        finally:
            bar.close()
        return received

    def _check_head(self, offset: int, block: bytes) -> None:
        """Refuse a body whose first bytes are not the file's kind (an HTML page, ...)."""
        with open(self.part, "rb") as fh:
            head = fh.read(offset)
        problem = sniff(self.dest.name, (head + block)[:HEAD_BYTES])
        if problem:
            self.part.unlink(missing_ok=True)
            Record.path_for(self.dest).unlink(missing_ok=True)
            raise DownloadError(
                f"GET {self.url} returned {problem} instead of {self.dest.name}: the URL may "
                "need a login or have moved; open it in a browser, then fix datasets.<name>.urls"
            )


def download(
    url: str,
    dest: str | Path,
    sha256: str | None = None,
    *,
    retries: int = 5,
    backoff: float = 1.0,
    timeout: float = 30,
    chunk: int = 1 << 20,
    progress: bool = True,
) -> Path:
    """Download ``url`` to ``dest``, resuming ``dest.part``; return ``dest``.

    ``retries``: further attempts after a connection error, timeout, short read, 429 or 5xx,
    waiting ``backoff * 2**k`` seconds before the k-th; an attempt that received bytes resets the
    count (a flaky link still finishes a large file). ``timeout``: seconds for connecting and
    between received bytes. With ``sha256`` the finished file is verified; a mismatch deletes it
    and raises :class:`ChecksumError`. An existing ``dest`` is kept only when it verifies (the
    sha256, else the size and sha256 recorded at its download, and its first bytes); otherwise
    it is downloaded again.
    """
    dest = Path(dest)
    sha256 = sha256.lower() if sha256 else None
    if url.startswith("http://") and sha256 is None:
        log.warning("%s is plain http and has no sha256: nothing proves the file unaltered", url)
    if dest.exists():
        problem = check_existing(dest, sha256, Record.load(dest))
        if problem is None:
            log.info("%s already present (verified), not downloading", dest)
            return dest
        log.warning("%s exists but %s; downloading it again", dest, problem)
        dest.unlink()
        Record.path_for(dest).unlink(missing_ok=True)
    dest.parent.mkdir(parents=True, exist_ok=True)
    transfer = _Transfer(url, dest, timeout, chunk, progress)
    failures = 0
    with requests.Session() as session:
        while True:
            try:
                if transfer.attempt(session, sha256):
                    break
                failures = 0  # ended without a length: the next request asks what follows
            except _Retryable as err:
                got = transfer.part.stat().st_size if transfer.part.exists() else 0
                failures = 1 if err.received else failures + 1
                if failures > retries:
                    raise DownloadError(
                        f"GET {url} failed after {retries} retries: {err}; "
                        f"{got} bytes kept in {transfer.part}, rerun to resume"
                    ) from err
                wait = backoff * 2 ** (failures - 1)
                log.warning("GET %s: %s; retry %d/%d in %.1fs", url, err, failures, retries, wait)
                time.sleep(wait)
    _finish(transfer, sha256, chunk)
    log.info("downloaded %s (%d bytes)", dest, dest.stat().st_size)
    return dest


def _finish(transfer: _Transfer, sha256: str | None, chunk: int) -> None:
    """Verify the complete ``.part``, record its size and hash, rename it to ``dest``."""
    part, dest, record = transfer.part, transfer.dest, transfer.record
    problem = sniff_file(part)  # a resumed part's head was checked by an earlier call
    if problem:
        part.unlink()
        raise DownloadError(f"GET {transfer.url} returned {problem} instead of {dest.name}")
    got = sha256_file(part, chunk)
    if sha256 is not None and got != sha256:
        part.unlink()
        Record.path_for(dest).unlink(missing_ok=True)
        raise ChecksumError(dest, sha256, got)
    record.size, record.sha256 = part.stat().st_size, got
    record.save(dest)
    os.replace(part, dest)  # atomic: dest exists only when complete (and verified)
