"""Evaluation: feature extraction, video classification, clip retrieval."""
