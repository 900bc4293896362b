"""Training curves as outputs of a run: the engine's metric logs as CSV tables and one PNG.

The engine logs a record every ``run.log_every`` steps to ``metrics.jsonl`` and one per epoch to
``epochs.jsonl`` (both in the run's state folder, trimmed to the saved step on a resume, so they
hold exactly one record per step of the finished run). At the end of the run they become, in the
folder given (``--curves``):

- ``curves.csv``: one row per logged step: ``step, epoch, lr, loss_total, <other loss terms>,
  <other values>`` (fine-tuning: ``train_acc``; both: ``clips_per_s``, ``data_s``, ``step_s``);
  ``lr`` is the rate the step trained with;
- ``epochs.csv``: one row per epoch: ``epoch, step`` (at its end), the means of the step values,
  ``epoch_s`` and, in fine-tuning, ``val_clip_acc`` (empty where that epoch was not validated);
- ``validation.csv`` (stages that validate: fine-tuning): one row per validated epoch, ``epoch,
  step, val_clip_acc``. DVC draws an empty cell as 0, so its plot reads this gap-free table;
- ``curves.png``: loss terms, learning rate and, in fine-tuning, train and validation accuracy
  against the step.

The CSVs are what ``dvc plots`` draws (``sstl dvc generate`` writes the plot definitions).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: no display on cluster nodes
import matplotlib.pyplot as plt
import pandas as pd

from sstl.files import tmp_name

STEPS, EPOCHS, VALIDATION, PLOT = "curves.csv", "epochs.csv", "validation.csv", "curves.png"
STEP_FIRST = ["step", "epoch", "lr", "loss_total"]  # always present, in this order
EPOCH_FIRST = ["epoch", "step", "loss_total"]
VALIDATION_COLUMNS = ["epoch", "step", "val_clip_acc"]
SIZE, DPI = (12.0, 3.8), 100


def table(records: list[dict[str, Any]], first: list[str]) -> pd.DataFrame:
    """Records -> a frame with the ``first`` columns, then the loss terms, then the rest (sorted);
    a value a record lacks is empty."""
    frame = pd.DataFrame.from_records(records)
    for column in first:
        if column not in frame:
            frame[column] = pd.Series(dtype=float)
    losses = sorted(c for c in frame if c.startswith("loss_") and c not in first)
    rest = sorted(c for c in frame if c not in first and c not in losses)
    return frame[first + losses + rest]


def plot(steps: pd.DataFrame, epochs: pd.DataFrame, title: str, out: Path) -> None:
    """The PNG: losses | learning rate | accuracy (when the run logged any), against the step."""
    accuracy = [c for c in ("train_acc", "val_clip_acc") if c in steps or c in epochs]
    panels = 3 if accuracy else 2
    fig, axes = plt.subplots(1, panels, figsize=SIZE, dpi=DPI, layout="constrained")
    fig.suptitle(title)
    ax = axes[0]
    for column in [c for c in steps if c.startswith("loss_")]:
        ax.plot(steps["step"], steps[column], label=column.removeprefix("loss_"), linewidth=1)
    if not epochs.empty:  # epoch means on top: the trend through the noise of single steps
        ax.plot(epochs["step"], epochs["loss_total"], "ko", markersize=3, label="total, epoch mean")
    ax.set(xlabel="step", ylabel="loss", title="loss terms")
    axes[1].plot(steps["step"], steps["lr"], color="tab:green")
    axes[1].set(xlabel="step", ylabel="learning rate", title="learning rate")
    if accuracy:
        ax = axes[2]
        if "train_acc" in steps:
            ax.plot(steps["step"], steps["train_acc"], linewidth=1, alpha=0.5, label="train batch")
        if "val_clip_acc" in epochs:
            val = epochs.dropna(subset=["val_clip_acc"])
            ax.plot(val["step"], val["val_clip_acc"], "o-", label="validation (centre clip)")
        ax.set(xlabel="step", ylabel="accuracy (%)", title="accuracy", ylim=(0, 100))
    for ax in axes:
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
        if steps.empty:
            ax.text(0.5, 0.5, "no step was logged", ha="center", transform=ax.transAxes)
    _atomic(out, lambda tmp: fig.savefig(tmp, format="png"))
    plt.close(fig)


def _atomic(path: Path, write: Callable[[Path], Any]) -> None:
    """``write(tmp)`` then rename to ``path``: a declared output is whole or absent."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_name(path)
    try:
        write(tmp)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def write_curves(
    steps: list[dict[str, Any]],
    epochs: list[dict[str, Any]],
    title: str,
    folder: Path,
    validates: bool = False,
) -> None:
    """Write the curves of a run into ``folder`` from its step and epoch records;
    ``validation.csv`` too when the stage ``validates`` (header only if no epoch was)."""
    step_table, epoch_table = table(steps, STEP_FIRST), table(epochs, EPOCH_FIRST)
    _atomic(folder / STEPS, lambda tmp: step_table.to_csv(tmp, index=False))
    _atomic(folder / EPOCHS, lambda tmp: epoch_table.to_csv(tmp, index=False))
    if validates:
        val = table(epochs, VALIDATION_COLUMNS)[VALIDATION_COLUMNS].dropna(subset=["val_clip_acc"])
        _atomic(folder / VALIDATION, lambda tmp: val.to_csv(tmp, index=False))
    plot(step_table, epoch_table, title, folder / PLOT)
