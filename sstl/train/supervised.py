"""``sstl supervise``: the supervised reference of Figures 1 and 2, the paper's first motivation
(a model trained with labels changes its features under temporal augmentation).

The pretraining backbone trained from a random init with the labels of the pretraining set, by
the fine-tuning loop (:mod:`sstl.train.finetune`: same recipe, resumable and preemptible), then
written as a pretrained weights file (:func:`sstl.models.weights.save_supervised`), so
fine-tuning, retrieval and analysis start from it exactly as from an SSTL pretraining.
"""

from __future__ import annotations

from sstl.config import SCRATCH, FinetuneConfig, load_section
from sstl.models.weights import save_supervised
from sstl.runtime import cfg_help, command_parser, parse_cfg
from sstl.train import finetune
from sstl.train.preempt import EXIT_REQUEUE
from sstl.train.progress import RunPaths, add_run_arguments


def main(cfg: FinetuneConfig, paths: RunPaths) -> int:
    """Train with labels (or resume), then write ``paths.out``; 0, or 75 when preempted."""
    classifier = paths.state_dir / "classifier.pt"  # the trained classifier, kept with the state
    rc = finetune.main(cfg, RunPaths(**{**vars(paths), "out": classifier}), SCRATCH)
    if rc != 0:
        return rc
    save_supervised(paths.out, classifier, cfg.run.seed)
    return 0


def cli(argv: list[str] | None = None) -> int:
    parser = command_parser(
        "sstl supervise",
        "Supervised training of the pretraining backbone on the pretraining set's labels\n"
        "(the reference model of Figures 1 and 2): a random backbone and a classifier trained\n"
        "with the fine-tuning recipe, validated on the test videos. Resumable and preemptible\n"
        f"like `sstl finetune` (exit code {EXIT_REQUEUE} after a saved stop).\n\n"
        "Writes OUT as a pretrained weights file (the trained backbone, untrained heads) that\n"
        "`sstl finetune --init`, `sstl retrieve` and `sstl analyse` read like an SSTL one; the\n"
        "classifier stays in STATE_DIR/classifier.pt; metrics and curves as `sstl finetune`.",
        "sstl supervise --cfg @my-finetune.yaml --manifest data/synthetic/manifest.csv\n"
        "--store data/synthetic/store --out runs/supervised/sup/weights.pt\n"
        "--state-dir state/supervised/sup --metrics state/supervised/sup/metrics.jsonl",
    )
    parser.add_argument("--cfg", help=cfg_help("finetune"))
    add_run_arguments(parser)
    args = parser.parse_args(argv)
    return main(load_section(FinetuneConfig, parse_cfg(args.cfg)), RunPaths.from_args(args))
