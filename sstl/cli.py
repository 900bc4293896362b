"""``sstl <command> [args]``: the entry point the workflow's rules call.

Each command lives in the module that owns its concern; this router imports only that module, so
``sstl cluster`` does not pay for importing torch.
"""

from __future__ import annotations

import importlib
import sys

from sstl import __version__
from sstl.config.loader import ConfigError
from sstl.runtime import UserError, catch_stop_signals

EXIT_CONFIG = 2  # a setting is wrong: the message names it, its value and what is allowed
TRAINING = (
    "pretrain",
    "supervise",
    "finetune",
)  # commands that save and exit 75 on SIGTERM / SIGUSR1

# command -> ("module:function", one-line help). The function takes argv and returns an exit code.
COMMANDS: dict[str, tuple[str, str]] = {
    "synthetic": ("sstl.data.synthetic:cli", "generate the embedded synthetic motion dataset"),
    "fetch": ("sstl.data.acquire:cli", "download + extract a dataset, or validate a local copy"),
    "extract": ("sstl.data.extract:cli_extract", "decode one shard of videos into the frame store"),
    "manifest": (
        "sstl.data.manifest:cli",
        "merge shard manifests into the dataset manifest",
    ),
    "pretrain": ("sstl.train.pretrain:cli", "SSTL self-supervised pretraining"),
    "supervise": ("sstl.train.supervised:cli", "train the backbone with labels (Figures 1, 2)"),
    "finetune": ("sstl.train.finetune:cli", "fine-tune a pretrained (or scratch) backbone"),
    "evaluate": ("sstl.eval.classify:cli", "5-clip video-level action recognition accuracy"),
    "retrieve": ("sstl.eval.retrieve:cli", "nearest-neighbour clip retrieval top-k"),
    "analyse": ("sstl.eval.similarity:cli", "feature-similarity statistics for Figures 1 and 2"),
    "report": ("sstl.report.build:cli", "Tables 1-5, Figures 1/2/4/5 and results/report.md"),
    "features": (
        "sstl.eval.video_features:cli",
        "clip and video features of any video files from a pretrained model",
    ),
    "cluster": ("sstl.cluster:cli", "GPU partitions and this workflow's Slurm jobs"),
    "dvc": ("sstl.dvcgen:cli", "write dvc.yaml from the Snakemake workflow"),
}


def _usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"  {name:<{width}}  {help_}" for name, (_, help_) in COMMANDS.items()]
    return (
        "usage: sstl [--version] <command> [--help] [args]\n\n"
        "Self-supervised Temporal Learning (SSTL): the commands the workflow's rules run, and\n"
        "`sstl features` for your own videos. `sstl <command> --help` explains each one.\n\n"
        "commands:\n" + "\n".join(lines) + "\n\nexample:\n  sstl pretrain --help"
    )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0 if argv else 2
    if argv[0] == "--version":
        print(f"sstl {__version__}")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"sstl: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    if name in TRAINING:
        catch_stop_signals()  # before the slow imports: a preemption during start-up is kept
    module, func = COMMANDS[name][0].split(":")
    command = getattr(importlib.import_module(module), func)
    try:
        return int(command(rest) or 0)
    except ConfigError as err:  # every command: a bad setting is exit 2 with one clear line
        print(f"sstl {name}: {err}", file=sys.stderr)
        return EXIT_CONFIG
    except UserError as err:  # a fixable failure (a lock held, a damaged state): no traceback
        print(f"sstl {name}: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
