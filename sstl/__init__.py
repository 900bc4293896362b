"""sstl: the reference pipeline for Self-supervised Temporal Learning (SSTL)."""

__version__ = "0.1.0"
