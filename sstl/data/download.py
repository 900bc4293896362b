"""Resumable HTTP(S) download with retries, sha256 verification and an atomic final rename.

Bytes go to ``<dest>.part``; a later call (or a retry) continues it with an HTTP ``Range``
request. Only a complete, verified file is renamed to ``dest``, so ``dest`` existing means done.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import requests
import urllib3
from tqdm import tqdm

from sstl.files import sha256_file

log = logging.getLogger(__name__)


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


def _attempt(
    session: requests.Session, url: str, part: Path, timeout: float, chunk: int, progress: bool
) -> None:
    """One GET continuing ``part``. Raises _Retryable or DownloadError."""
    have = part.stat().st_size if part.exists() else 0
    # identity: byte offsets must be those of the file, not of a gzip-encoded body.
    headers = {"Accept-Encoding": "identity"}
    if have:
        headers["Range"] = f"bytes={have}-"
    try:
        resp = session.get(url, headers=headers, stream=True, timeout=(timeout, timeout))
    except _NETWORK_ERRORS as err:
        raise _Retryable(f"{type(err).__name__}: {err}") from err
    with resp:
        status = resp.status_code
        start, total = _content_range(resp)
        if status == 416 and have:
            if total == have:  # the .part is already complete
                return
            log.warning("server refused range %d- of %s (size %s); restarting", have, url, total)
            part.unlink()
            raise _Retryable(f"HTTP 416 for range {have}- (server size {total})")
        if status >= 500 or status == 429:
            raise _Retryable(f"HTTP {status} {resp.reason}")
        if status not in (200, 206):
            raise DownloadError(f"GET {url} failed with HTTP {status} {resp.reason}")
        if status == 206 and start != have:
            part.unlink()
            raise _Retryable(f"asked for bytes {have}- but got Content-Range offset {start}")
        if status == 200 and have:
            log.warning("server ignored the Range header; restarting %s from byte 0", url)
            have = 0
        length = resp.headers.get("Content-Length")
        if status == 206 and total is not None:
            expected: int | None = total
        else:
            expected = have + int(length) if length else None
        received = 0
        bar = tqdm(
            total=expected,
            initial=have,
            unit="B",
            unit_scale=True,
            desc=part.name[:-5],
            disable=not progress,
            leave=False,
        )
        try:
            with part.open("ab" if have else "wb") as fh:
                for block in resp.raw.stream(chunk, decode_content=False):
                    fh.write(block)
                    received += len(block)
                    bar.update(len(block))
        except _NETWORK_ERRORS as err:
            raise _Retryable(f"connection lost after {received} bytes: {err}", received) from err
        finally:
            bar.close()
        if expected is not None and have + received != expected:
            raise _Retryable(f"short read: {have + received} of {expected} bytes", received)


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
    and raises :class:`ChecksumError`. An existing ``dest`` is kept when it verifies (or when no
    checksum is given).
    """
    dest = Path(dest)
    part = dest.with_name(dest.name + ".part")
    sha256 = sha256.lower() if sha256 else None
    if dest.exists():
        if sha256 is None or sha256_file(dest) == sha256:
            log.info("%s already present, not downloading", dest)
            return dest
        log.warning("%s exists but its sha256 differs; downloading again", dest)
        dest.unlink()
    dest.parent.mkdir(parents=True, exist_ok=True)
    failures = 0
    with requests.Session() as session:
        while True:
            try:
                _attempt(session, url, part, timeout, chunk, progress)
                break
            except _Retryable as err:
                got = part.stat().st_size if part.exists() else 0
                failures = 1 if err.received else failures + 1
                if failures > retries:
                    raise DownloadError(
                        f"GET {url} failed after {retries} retries: {err}; "
                        f"{got} bytes kept in {part}, rerun to resume"
                    ) from err
                wait = backoff * 2 ** (failures - 1)
                log.warning("GET %s: %s; retry %d/%d in %.1fs", url, err, failures, retries, wait)
                time.sleep(wait)
    if sha256 is not None:
        got = sha256_file(part, chunk)
        if got != sha256:
            part.unlink()
            raise ChecksumError(dest, sha256, got)
    os.replace(part, dest)  # atomic: dest exists only when complete (and verified)
    log.info("downloaded %s (%d bytes)", dest, dest.stat().st_size)
    return dest
