"""DVC's top-level ``plots:``: the training curves of the generated stages, for ``dvc plots show``
and ``dvc plots diff``.

The training stages write ``curves.csv`` (per logged step), ``epochs.csv`` (per epoch),
``validation.csv`` (fine-tuning) and ``curves.png`` (:mod:`sstl.train.curves`). Each plot here
overlays one column of every run of a stage (the experiments side by side; ``dvc plots diff``
adds revisions), and every PNG is shown as it is. The files stay plain stage ``outs``: declared
as stage plots too, DVC would draw each a second time with its default axes.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

# (stage, file, x, column, title, y label, template); a plot is written only when some stage has
# the file. linear: DVC's line with a smoothing slider, for the noisy step values; simple: a plain
# line. Every column plotted has a value in every row: DVC draws an empty cell as 0 (so the
# validation accuracy comes from validation.csv, which holds only the validated epochs)
CURVES = [
    ("pretrain", "curves.csv", "step", "loss_total", "pretraining loss", "loss", "linear"),
    (
        "pretrain",
        "curves.csv",
        "step",
        "lr",
        "pretraining learning rate",
        "learning rate",
        "simple",
    ),
    ("finetune", "curves.csv", "step", "loss_total", "fine-tuning loss", "cross-entropy", "linear"),
    (
        "finetune",
        "curves.csv",
        "step",
        "lr",
        "fine-tuning learning rate",
        "learning rate",
        "simple",
    ),
    (
        "finetune",
        "validation.csv",
        "epoch",
        "val_clip_acc",
        "fine-tuning validation accuracy (centre clip)",
        "accuracy (%)",
        "simple",
    ),
]
IMAGE = "curves.png"


def plots(stages: dict[str, dict[str, Any]]) -> list[Any]:
    """The ``plots:`` list for ``stages`` (dvc.yaml's stage name -> stage, the rule before the
    first ``-``): line plots of the curve tables, then the curve images."""
    outs = {name: stage.get("outs", []) for name, stage in stages.items()}

    def files(rule: str, name: str) -> list[str]:
        return sorted(
            out
            for stage, paths in outs.items()
            if stage.split("-", 1)[0] == rule
            for out in paths
            if PurePosixPath(out).name == name
        )

    found: list[Any] = []
    for rule, name, x, column, title, y_label, template in CURVES:
        paths = files(rule, name)
        if paths:
            plot_id = f"{rule}-{column.replace('_', '-')}"
            found.append(
                {
                    plot_id: {
                        "template": template,
                        "title": title,
                        "x": x,
                        "y": {path: column for path in paths},
                        "x_label": x,
                        "y_label": y_label,
                    }
                }
            )
    found += [path for rule in ("pretrain", "supervise", "finetune") for path in files(rule, IMAGE)]
    return found
