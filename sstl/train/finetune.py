"""``sstl finetune``: supervised fine-tuning on UCF101 / HMDB51 (paper Sec 4.2), resumable.

The loop, resume and preemption are the engine's (:mod:`sstl.train.engine`); this file supplies
what is particular to fine-tuning:

- the model: :class:`~sstl.models.sstl.Finetuner` (backbone + dropout + a new linear classifier)
  whose conv/BN weights come from the pretraining weights (``--init``), or stay at random init
  for ``scratch`` (:func:`sstl.models.weights.build_finetuner`);
- data: the manifest's ``train`` rows (status ok), one random run of ``clip_len`` consecutive
  frames per video per epoch; the spatial parameters are drawn in the loader workers and applied
  batched on the device (:mod:`sstl.train.batches`);
- the step: cross-entropy, SGD, lr x gamma at the epoch milestones (stepped per step);
- validation every ``val_every`` epochs and after the last, on the ``test`` rows: one centre clip
  per video, logged as clip accuracy (the 5-clip video accuracy is ``sstl evaluate``);
- the resume identity: the config less execution-only keys, the init's sha256 and the videos;
- the output: the fine-tuned weights file (:func:`sstl.models.weights.save_finetuned`).
"""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd
import torch.nn.functional as F

from sstl.augment.spatial import SpatialAugment
from sstl.config import FinetuneConfig, load_section, to_dict
from sstl.data.clips import ClipDataset, load_manifest
from sstl.models.features import extract_features
from sstl.models.sstl import unwrap
from sstl.models.weights import build_finetuner, require_init, save_finetuned
from sstl.runtime import cfg_help, command_parser, parse_cfg
from sstl.train import checkpoint as ckpt
from sstl.train import engine
from sstl.train.batches import FinetuneTransform, augment_clips
from sstl.train.distributed import DistEnv
from sstl.train.loaders import eval_loader, train_loader
from sstl.train.optim import build_optimizer, build_scheduler
from sstl.train.progress import RunPaths, add_run_arguments

log = logging.getLogger(__name__)


def class_names(manifest: pd.DataFrame) -> list[str]:
    """Class names indexed by label, from every labelled manifest row."""
    rows = manifest[manifest["label"] >= 0][["label", "class_name"]].drop_duplicates()
    if rows.empty:
        raise ValueError("the manifest has no labelled rows (label >= 0) to fine-tune on")
    if rows["label"].duplicated().any():
        bad = rows[rows["label"].duplicated(keep=False)].to_dict("records")
        raise ValueError(f"labels with more than one class name in the manifest: {bad[:4]}")
    names = dict(zip(rows["label"], rows["class_name"], strict=True))
    return [str(names.get(i, f"class_{i}")) for i in range(int(rows["label"].max()) + 1)]


class FinetuneStep:
    """One optimizer step: augment on the device, cross-entropy, backward, SGD.

    ``__call__(batch, step)``: ``frames [B, T, H, W, 3] uint8``, ``spatial``, ``label [B]`` ->
    ``loss_total`` (cross-entropy) and ``train_acc`` (percent of the batch's clips right).
    """

    def __init__(
        self, cfg: FinetuneConfig, env: DistEnv, init: str, classes: list[str], steps: int
    ) -> None:
        self.cfg, self.env = cfg, env
        model, self.init_sha = build_finetuner(cfg.model, init, len(classes), cfg.dropout)
        self.model = engine.wrap(model.to(env.device), env)
        self.augment = SpatialAugment(cfg.spatial)  # no parameters: it runs on the clips' device
        self.optimizer = build_optimizer(self.model, cfg.optim)
        self.scheduler = build_scheduler(self.optimizer, cfg.optim, steps)

    def __call__(self, batch: dict[str, Any], step: int) -> dict[str, float]:
        device = self.env.device
        clips = augment_clips(self.augment, batch, device)  # (B, 3, T, S, S)
        labels = batch["label"].to(device, non_blocking=True)
        with engine.autocast(self.cfg.run, device):
            logits = self.model(clips)
        loss = F.cross_entropy(logits.float(), labels)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.scheduler.step()
        acc = 100.0 * float((logits.argmax(1) == labels).float().mean())
        return {"loss_total": float(loss), "train_acc": acc}

    def lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    def state_dict(self) -> dict[str, Any]:
        return {
            "model": unwrap(self.model).state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        unwrap(self.model).load_state_dict(state["model"])  # in place: DDP sees it too
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])


def validate(step: FinetuneStep, loader: Any) -> float:
    """Clip accuracy (percent) of one centre clip per test video."""
    cfg = step.cfg
    logits, labels, _ = extract_features(
        unwrap(step.model), loader, "logits", step.env.device, cfg.spatial.crop_size, cfg.run.amp
    )
    return 100.0 * float((logits[:, 0].argmax(1) == labels).float().mean())


def build_job(cfg: FinetuneConfig, paths: engine.RunPaths, init: str, env: DistEnv) -> engine.Job:
    manifest = load_manifest(paths.manifest)
    classes = class_names(manifest)
    train = ClipDataset(
        manifest[manifest["split"] == "train"].reset_index(drop=True),
        paths.store,
        mode="window",
        clip_len=cfg.clip_len,
        window=cfg.clip_len,
        transform=FinetuneTransform(cfg.spatial),
        seed=cfg.run.seed,
    )
    what = f"train videos with status ok in {paths.manifest}"
    sampler, loader = train_loader(
        train, env, cfg.optim.batch_size, cfg.run.seed, what, workers=cfg.run.workers
    )
    step = FinetuneStep(cfg, env, init, classes, sampler.batches_per_epoch())
    test_rows = manifest[(manifest["split"] == "test") & (manifest["status"] == "ok")]
    val = None
    if test_rows.empty:
        log.warning("no test videos with status ok in %s: validation is skipped", paths.manifest)
    elif env.is_main:
        test = ClipDataset(
            test_rows.reset_index(drop=True), paths.store, "uniform", cfg.clip_len, num_clips=1
        )
        val = eval_loader(test, env, loader.batch_size, cfg.run.workers, cfg.run.seed)

    def end_epoch(epoch: int, last: bool) -> dict[str, Any]:
        if val is None or not (last or epoch % cfg.val_every == 0):
            return {}
        return {"val_clip_acc": validate(step, val)}

    cfg_dict = to_dict(cfg)

    def finish(meta: dict[str, Any]) -> None:
        records = ckpt.read_records(paths.epochs)
        accs = [r["val_clip_acc"] for r in records if "val_clip_acc" in r]
        meta |= {
            "init": init,
            "init_sha256": step.init_sha,
            "val_clip_acc": accs[-1] if accs else None,
        }
        save_finetuned(paths.out, step.model, classes, cfg_dict, meta)

    identity = {"config": ckpt.resume_config(cfg_dict), "init": step.init_sha, "videos": train.ids}
    return engine.Job(
        dataset=train,
        sampler=sampler,
        loader=loader,
        step=step,
        lr=step.lr,
        state=step,
        identity=identity,
        finish=finish,
        end_epoch=end_epoch,
        clips_per_step=cfg.optim.batch_size,
    )


def main(cfg: FinetuneConfig, paths: engine.RunPaths, init: str) -> int:
    """Fine-tune (or resume) from ``init`` (weights file or ``scratch``), write ``paths.out``;
    returns 0, or 75 when preempted."""
    require_init(init, "--init")
    return engine.run(
        "finetune",
        {**to_dict(cfg), "init": init},
        cfg.run,
        cfg.optim.epochs,
        cfg.optim.batch_size,
        paths,
        lambda env: build_job(cfg, paths, init, env),
    )


def cli(argv: list[str] | None = None) -> int:
    parser = command_parser(
        "sstl finetune",
        "Supervised fine-tuning for action recognition: the backbone of a pretrained encoder\n"
        "(or a random one, 'scratch') with a new classifier, trained on the dataset's train\n"
        "videos and validated on one centre clip per test video every val_every epochs.\n"
        "Resumable and preemptible like `sstl pretrain` (exit code 75 after a saved stop).\n\n"
        "Writes OUT (the fine-tuned weights, read by `sstl evaluate`), the resume state in\n"
        "STATE_DIR, per-step losses, accuracy and learning rate to METRICS (epoch means and\n"
        "validation accuracy beside it in epochs.jsonl) and, when asked, TensorBoard scalars\n"
        "and the training curves (CSV tables and a PNG of loss, learning rate and accuracy).",
        "sstl finetune --cfg @my-finetune.yaml --manifest data/ucf101/manifest.csv\n"
        "--store data/ucf101/store --init runs/pretrain/mine/weights.pt\n"
        "--out runs/finetune/mine/ucf101/weights.pt --state-dir state/finetune/mine/ucf101\n"
        "--metrics state/finetune/mine/ucf101/metrics.jsonl",
    )
    parser.add_argument("--cfg", help=cfg_help("finetune"))
    parser.add_argument(
        "--init", required=True, help="a pretrained weights file, or 'scratch' (random init)"
    )
    add_run_arguments(parser)
    args = parser.parse_args(argv)
    paths = RunPaths.from_args(args)
    return main(load_section(FinetuneConfig, parse_cfg(args.cfg)), paths, args.init)
