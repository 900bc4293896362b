"""Temporal (index sampling) and spatial (batched, clip-consistent) augmentations."""
