"""What ``sstl pretrain`` and ``sstl finetune`` share about a run: its files and where it stands.

One definition of each, so the two loops cannot drift: :class:`RunPaths` is the CLI's file
arguments (a stage subclasses it to add its own, e.g. fine-tuning's ``--init``) and
:class:`Progress` the position saved in the resume state (``dataclasses.asdict``) and restored
from it (``Progress(**d)``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass
class RunPaths:
    """The files of one training run, as given on the command line."""

    manifest: Path  # dataset manifest.csv
    store: Path  # frame store folder
    out: Path  # the final weights file, written only at the end
    state_dir: Path  # resume state folder
    metrics: Path  # metrics .jsonl
    tensorboard: Path | None = None  # TensorBoard log folder (optional)

    @property
    def state(self) -> Path:
        return self.state_dir / "resume.pt"


@dataclass
class Progress:
    """Where the run stands; saved in the resume state."""

    epoch: int = 0
    batch: int = 0  # batches of ``epoch`` already consumed (the sampler's start offset)
    step: int = 0  # optimizer steps in total
    # pretrain: the total loss of the last step; finetune: the mean loss of the last epoch
    loss: float = float("nan")
