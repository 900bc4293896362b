"""Resume state on disk: reading it, RNG snapshots, what it must match, a metrics log that resumes.

A resume state lives in its own folder (``state/<stage>/<exp>/resume.pt``), never at a workflow's
declared output: Snakemake deletes the declared outputs of a failed job, and a preempted job is a
failed job until it is requeued. It is written with :func:`sstl.files.save_atomic`, so a crash or
``kill -9`` at any moment leaves either the previous state or the new one, never half a file.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import pickle
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sstl.runtime import UserError

log = logging.getLogger(__name__)


class StateError(UserError):
    """A resume state that cannot be loaded safely: not sstl's format, tampered with, or cut off."""


# Resume states written before the RNG states became tensors hold numpy arrays: these globals
# rebuild a plain ndarray (no code runs; object arrays' items still pass the same restricted
# unpickler), so such states keep resuming.
def _numpy_globals() -> contextlib.AbstractContextManager:
    if not hasattr(torch.serialization, "safe_globals"):  # torch < 2.5: such states are refused
        return contextlib.nullcontext()
    core = getattr(np, "_core", None) or np.core
    allowed = [core.multiarray._reconstruct, np.ndarray, np.dtype, type(np.dtype(np.uint32))]
    return torch.serialization.safe_globals(allowed)


def _blocked(err: Exception) -> str:
    """The line of torch's refusal that names the object (its first line is generic advice)."""
    lines = [ln.strip() for ln in str(err).splitlines() if "GLOBAL" in ln or "Unsupported" in ln]
    return lines[0] if lines else type(err).__name__


def load_state(path: str | Path) -> dict[str, Any] | None:
    """The saved state dict, or None when there is none. Loaded on CPU.

    ``weights_only=True``: only tensors and plain containers are read, so a file planted in the
    state folder cannot run code. Anything else raises :class:`StateError` naming the file.
    """
    path = Path(path)
    if not path.is_file():
        return None
    try:
        with _numpy_globals():
            state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise StateError(
            f"refusing to load the resume state {path}: it holds Python objects other than "
            f"tensors and plain containers ({_blocked(err)}), so sstl did not write it (or it was "
            "altered); nothing in it was run. Delete it to start this run over."
        ) from None
    except (RuntimeError, EOFError, ValueError) as err:  # cut off or not a torch file
        raise StateError(
            f"cannot read the resume state {path} ({type(err).__name__}: {err}); delete it to "
            "start this run over"
        ) from err
    if not isinstance(state, dict):
        raise StateError(
            f"the resume state {path} holds a {type(state).__name__}, not a dict; delete it to "
            "start this run over"
        )
    return state


def capture_rng() -> dict[str, Any]:
    """Python, numpy, torch CPU and (when present) all CUDA generator states, as tensors and ints.

    Plain types only, so :func:`load_state` reads them with ``weights_only=True``.
    """
    version, words, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": {"version": version, "state": torch.tensor(words), "gauss": gauss},
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng`; CUDA states are restored when both sides have them.

    Also takes the tuples older states hold (``random.getstate()``, ``np.random.get_state()``).
    """
    py = state["python"]
    if isinstance(py, dict):
        py = (py["version"], tuple(int(w) for w in py["state"].tolist()), py["gauss"])
    random.setstate(py)
    npy = state["numpy"]
    if isinstance(npy, dict):
        keys = npy["keys"].numpy().astype(np.uint32)
        npy = (npy["kind"], keys, npy["pos"], npy["has_gauss"], npy["cached_gaussian"])
    np.random.set_state(npy)
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        cuda = state["cuda"][: torch.cuda.device_count()]
        torch.cuda.set_rng_state_all(cuda)


# Run settings that change how a run executes, not what it computes: a resume ignores them.
UNHASHED_RUN_KEYS = ("workers", "save_every", "log_every", "max_steps")


def resume_config(cfg_dict: dict[str, Any]) -> dict[str, Any]:
    """The part of a training config a resume state must match (``run`` less execution keys)."""
    out = dict(cfg_dict)
    out["run"] = {k: v for k, v in cfg_dict["run"].items() if k not in UNHASHED_RUN_KEYS}
    return out


def move_aside(path: str | Path, tag: str) -> Path:
    """Rename a state that no longer applies to ``<name>.stale-<tag>``; return the new path."""
    path = Path(path)
    stale = path.with_name(f"{path.name}.stale-{tag}")
    os.replace(path, stale)
    return stale


def read_records(path: str | Path) -> list[dict[str, Any]]:
    """The JSON records of a metrics file, skipping a line cut off by a kill; [] when absent."""
    path = Path(path)
    records = []
    for line in path.read_text().splitlines() if path.is_file() else []:
        try:
            records.append(json.loads(line))
        except ValueError:
            continue
    return records


class MetricsLog:
    """Metric records as JSONL (appended, flushed per line) and TensorBoard scalars.

    Records carry a ``step``. On a resume at ``start_step``, lines past it (written after the last
    saved state, before a crash) are dropped, so the file's steps continue without duplicates.
    ``enabled=False`` (DDP ranks other than 0) makes every call a no-op.
    """

    def __init__(
        self, path: Path, tb_dir: Path | None, start_step: int, tag: str, enabled: bool = True
    ) -> None:
        self.tag = tag
        self.fh, self.tb = None, None
        if not enabled:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        kept = []
        if start_step > 0 and path.is_file():
            for line in path.read_text().splitlines():
                try:
                    if json.loads(line)["step"] <= start_step:
                        kept.append(line + "\n")
                except (ValueError, KeyError, TypeError):
                    continue  # a line cut off by a kill
        path.write_text("".join(kept))
        self.fh = path.open("a")
        if tb_dir is not None:
            from torch.utils.tensorboard import SummaryWriter  # slow import: only when asked

            self.tb = SummaryWriter(str(tb_dir), purge_step=start_step + 1)

    def write(self, record: dict[str, Any]) -> None:
        if self.fh is None:
            return
        self.fh.write(json.dumps(record) + "\n")
        self.fh.flush()
        if self.tb is not None:
            for key, value in record.items():
                if key != "step":
                    self.tb.add_scalar(f"{self.tag}/{key}", value, record["step"])

    def __enter__(self) -> MetricsLog:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.fh is not None:
            self.fh.close()
        if self.tb is not None:
            self.tb.close()
