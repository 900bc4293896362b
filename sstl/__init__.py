"""sstl: the reference pipeline for Self-supervised Temporal Learning (SSTL).

For use outside the pipeline::

    import sstl
    backbone = sstl.load_pretrained("runs/pretrain/sstl/weights.pt")  # [B,3,T,H,W] -> [B, D]

``import sstl`` stays light (no torch): every command, e.g. ``sstl cluster``, imports this
package first. The public functions below are imported on first use (PEP 562).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> the module that owns it (imported when the name is first used)
_LAZY = {"load_pretrained": "sstl.models.weights"}
__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module 'sstl' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
