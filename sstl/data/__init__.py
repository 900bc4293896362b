"""Datasets: decoding, the frame store, split parsers, acquisition, clip sampling."""
