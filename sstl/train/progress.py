"""What both training stages share besides the engine: the run's files (from the command line)
and the position in the run (saved in the resume state)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class RunPaths:
    """The files of one training run, as given on the command line."""

    manifest: Path  # dataset manifest.csv
    store: Path  # frame store folder
    out: Path  # the final weights file, written only at the end
    state_dir: Path  # resume state folder
    metrics: Path  # per-step metrics .jsonl (epoch records go to epochs.jsonl beside it)
    tensorboard: Path | None = None  # TensorBoard log folder (optional)
    curves: Path | None = None  # folder of the training curves, written at the end (optional)

    @property
    def state(self) -> Path:
        return self.state_dir / "resume.pt"

    @property
    def epochs(self) -> Path:
        return self.metrics.with_name("epochs.jsonl")

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> RunPaths:
        """From the options :func:`add_run_arguments` defines."""
        return cls(
            args.manifest,
            args.store,
            args.out,
            args.state_dir,
            args.metrics,
            args.tensorboard,
            args.curves,
        )


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of a training command that name its files (:class:`RunPaths`)."""
    parser.add_argument("--manifest", type=Path, required=True, help="the dataset's manifest.csv")
    parser.add_argument("--store", type=Path, required=True, help="the dataset's frame store")
    parser.add_argument("--out", type=Path, required=True, help="the weights file to write")
    parser.add_argument(
        "--state-dir", type=Path, required=True, help="folder for the resume state (keep it)"
    )
    parser.add_argument("--metrics", type=Path, required=True, help="per-step metrics (.jsonl)")
    parser.add_argument("--tensorboard", type=Path, help="also log to this TensorBoard folder")
    parser.add_argument(
        "--curves",
        type=Path,
        metavar="DIR",
        help="at the end, write the training curves into DIR: curves.csv (every logged step), "
        "epochs.csv (every epoch), validation.csv (fine-tuning: the validated epochs) and "
        "curves.png",
    )


@dataclass
class Progress:
    """Where the run stands; saved in the resume state."""

    epoch: int = 0
    batch: int = 0  # batches of ``epoch`` already consumed (the sampler's start offset)
    step: int = 0  # optimizer steps in total
    loss: float = float("nan")  # ``loss_total`` of the last step
    sums: dict[str, float] = field(default_factory=dict)  # this epoch's step logs, summed
