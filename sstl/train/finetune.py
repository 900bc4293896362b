"""``sstl finetune``: supervised fine-tuning on UCF101 / HMDB51 (METHOD §7), resumable.

    sstl finetune --cfg JSON --manifest CSV --store DIR --init weights.pt|scratch \
        --out weights.pt --state-dir DIR --metrics FILE.jsonl [--tensorboard DIR]

- model: :class:`~sstl.models.sstl.Finetuner` (backbone + dropout + new linear classifier); the
  backbone's conv/BN weights come from the pretraining weights (``--init``), or stay at random
  init for ``scratch``. The pretraining's backbone settings must equal ``cfg.model``'s;
- data: the manifest's ``train`` rows (status ok), one random run of ``clip_len`` consecutive
  frames per video per epoch; the spatial parameters (random resized crop, flip, colour ops per
  ``cfg.spatial``) are drawn in the loader workers from each sample's seeded generator and applied
  batched on the device (:class:`~sstl.augment.spatial.SpatialAugment`);
- optimisation: SGD (momentum 0.9, wd 0.01, lr 0.02 at batch 64 scaled linearly), lr x gamma at
  the epoch milestones (stepped per step, :func:`sstl.train.step.build_scheduler`);
- validation every ``val_every`` epochs (and after the last) on the ``test`` rows: one centre
  clip per video, logged as clip accuracy (the 5-clip video accuracy is ``sstl evaluate``);
- resume: ``--state-dir/resume.pt`` (model, optimizer, scheduler, progress, RNG, config hash)
  at every epoch end, every ``run.save_every`` steps and on SIGTERM/SIGUSR1 (then exit 75);
- ``--out``: model state, number of classes, class names, model config, meta (git, init sha256).

The model and its weights file live in :mod:`sstl.train.finetune_model`, the loaders and the
augmentation in :mod:`sstl.train.finetune_data`; this file is the loop around them.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

from sstl.augment.spatial import SpatialAugment
from sstl.config import ConfigError, FinetuneConfig, load_section, to_dict
from sstl.data.clips import load_manifest
from sstl.eval.features import extract_features
from sstl.models.sstl import unwrap
from sstl.runtime import log_startup, parse_cfg, seed_everything, setup_logging
from sstl.train import checkpoint as ckpt
from sstl.train.distributed import (
    DistEnv,
    barrier,
    cleanup,
    convert_sync_batchnorm,
    init_distributed,
)
from sstl.train.finetune_data import augment_batch, build_loaders, class_names
from sstl.train.finetune_model import SCRATCH, build_model, save_finetuned
from sstl.train.preempt import EXIT_REQUEUE, Preemption, request_requeue
from sstl.train.progress import Progress, RunPaths
from sstl.train.step import build_optimizer, build_scheduler

log = logging.getLogger(__name__)


@dataclass
class FinetunePaths(RunPaths):
    """The run's files plus the weights it starts from."""

    # keyword-only: a field without a default cannot follow the optional ``tensorboard``
    init: str = field(kw_only=True)  # pretraining weights file, or "scratch"


@dataclass
class FinetuneProgress(Progress):
    """Progress plus the last validation; saved in the resume state."""

    val_clip_acc: float | None = None  # last validation, percent


def finetune_config(raw: dict[str, Any]) -> FinetuneConfig:
    """``--cfg`` mapping -> FinetuneConfig, partial sections merged over the FINE-TUNING defaults.

    ``load_section`` fills a missing key of a nested section from that section's class, so a
    partial ``optim`` would otherwise get pretraining's defaults (cosine, lr 2.0 at 2048).
    """
    merged = to_dict(FinetuneConfig())
    for key, value in raw.items():
        nested = isinstance(value, dict) and isinstance(merged.get(key), dict)
        merged[key] = {**merged[key], **value} if nested else value
    return load_section(FinetuneConfig, merged)


def resume_hash(cfg: FinetuneConfig, init_sha: str) -> str:
    d = ckpt.resume_config(to_dict(cfg))
    return ckpt.config_hash({"cfg": d, "init": init_sha})


def _autocast(cfg: FinetuneConfig, device: torch.device) -> torch.autocast:
    enabled = cfg.run.amp and device.type == "cuda"
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled)


def train_one_epoch(
    model: nn.Module,
    augment: SpatialAugment,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    loader: DataLoader,
    progress: FinetuneProgress,
    cfg: FinetuneConfig,
    env: DistEnv,
    save: Any,
    preempt: Preemption,
) -> tuple[str, dict[str, float]]:
    """Run the rest of ``progress.epoch``; returns ("epoch" | "max_steps" | "preempted", stats)."""
    model.train()
    loss_sum, correct, seen = 0.0, 0, 0
    bar = tqdm(
        total=len(loader) + progress.batch,
        initial=progress.batch,
        desc=f"finetune epoch {progress.epoch}",
        disable=not env.is_main,
        file=sys.stderr,
        dynamic_ncols=True,
    )
    status = "epoch"
    for batch in loader:
        clips = augment_batch(augment, batch, env.device)  # (B, 3, T, S, S)
        labels = batch["label"].to(env.device, non_blocking=True)
        with _autocast(cfg, env.device):
            logits = model(clips)
        loss = F.cross_entropy(logits.float(), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        progress.step, progress.batch = progress.step + 1, progress.batch + 1
        loss_sum += float(loss) * len(labels)
        correct += int((logits.argmax(1) == labels).sum())
        seen += len(labels)
        bar.update(1)
        bar.set_postfix(loss=f"{float(loss):.4f}")
        if progress.step % cfg.run.save_every == 0:
            save()
        if preempt.should_stop(env.device):
            status = "preempted"
            break
        if 0 < cfg.run.max_steps <= progress.step:
            status = "max_steps"
            break
    bar.close()
    stats = {"loss": loss_sum / max(seen, 1), "train_clip_acc": 100.0 * correct / max(seen, 1)}
    return status, stats


def validate(model: nn.Module, loader: DataLoader, cfg: FinetuneConfig, device) -> float:
    """Clip accuracy (percent) of one centre clip per test video."""
    logits, labels, _ = extract_features(
        unwrap(model), loader, "logits", device, cfg.spatial.crop_size, amp=cfg.run.amp
    )
    return 100.0 * float((logits[:, 0].argmax(1) == labels).float().mean())


def main(cfg: FinetuneConfig, paths: FinetunePaths) -> int:
    """Fine-tune (or resume), write ``paths.out``; returns 0, or 75 when preempted."""
    setup_logging()
    env = init_distributed(cfg.run.device)
    try:
        if cfg.optim.batch_size % env.world_size:
            raise ConfigError(
                f"optim.batch_size = {cfg.optim.batch_size} is not allowed: it is the global "
                f"batch and must be divisible by the {env.world_size} processes of this job"
            )
        return _finetune(cfg, paths, env)
    finally:
        cleanup()


def _finetune(cfg: FinetuneConfig, paths: FinetunePaths, env: DistEnv) -> int:
    cfg_dict = to_dict(cfg)
    startup = log_startup("finetune", {**cfg_dict, "init": paths.init})
    seed_everything(cfg.run.seed, deterministic=cfg.run.deterministic)
    torch.backends.cudnn.benchmark = not cfg.run.deterministic

    manifest = load_manifest(paths.manifest)
    classes = class_names(manifest)
    dataset, sampler, loader, val_loader = build_loaders(cfg, paths, env, manifest)
    model, init_sha = build_model(cfg, paths.init, len(classes))
    model = model.to(env.device)
    if env.distributed:
        model = convert_sync_batchnorm(model, env.device)
        ids = [env.device.index] if env.device.type == "cuda" else None
        model = DistributedDataParallel(model, device_ids=ids)
    augment = SpatialAugment(cfg.spatial)  # no parameters: it runs on the clips' device
    optimizer = build_optimizer(model, cfg.optim)
    scheduler = build_scheduler(optimizer, cfg.optim, sampler.batches_per_epoch())
    cfg_hash = resume_hash(cfg, init_sha)

    progress = FinetuneProgress()
    state = ckpt.load_state(paths.state)
    if state is not None and state["config_hash"] != cfg_hash:
        barrier()
        if env.is_main:
            stale = ckpt.move_aside(paths.state, state["config_hash"])
            log.warning("resume state is from another config or init: moved aside to %s", stale)
        state = None
    if state is not None:
        unwrap(model).load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        ckpt.restore_rng(state["rng"])
        progress = FinetuneProgress(**state["progress"])
        log.info("resuming at epoch %d batch %d (step %d)", *dataclasses.astuple(progress)[:3])

    def save() -> None:
        if env.is_main:
            ckpt.save_atomic(
                {
                    "model": unwrap(model).state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "rng": ckpt.capture_rng(),
                    "progress": dataclasses.asdict(progress),
                    "config_hash": cfg_hash,
                },
                paths.state,
            )

    metrics = ckpt.MetricsLog(
        paths.metrics, paths.tensorboard, progress.step, "finetune", enabled=env.is_main
    )
    status = "epoch"
    with Preemption() as preempt, metrics:
        while status == "epoch" and progress.epoch < cfg.optim.epochs:
            sampler.set_epoch(progress.epoch, start_batch=progress.batch)
            dataset.set_epoch(progress.epoch)
            lr = optimizer.param_groups[0]["lr"]
            t0 = time.perf_counter()
            status, stats = train_one_epoch(
                model, augment, optimizer, scheduler, loader, progress, cfg, env, save, preempt
            )
            if status == "preempted":
                save()
                break
            if status == "epoch":  # max_steps can stop mid-epoch: that epoch is not done
                progress.epoch, progress.batch = progress.epoch + 1, 0
            progress.loss = stats["loss"]
            record = {"step": progress.step, "epoch": progress.epoch, "lr": lr, **stats}
            last = progress.epoch == cfg.optim.epochs or status == "max_steps"
            due = status == "epoch" and progress.epoch % cfg.val_every == 0
            if val_loader is not None and (due or last):
                progress.val_clip_acc = validate(model, val_loader, cfg, env.device)
                record["val_clip_acc"] = progress.val_clip_acc
            record["epoch_s"] = time.perf_counter() - t0
            metrics.write(record)
            log.info("epoch %d: %s", progress.epoch, record)
            save()
            barrier()
    if status == "preempted":
        barrier()
        log.warning("stopped by %s after step %d: exit %d", preempt.describe(), progress.step, 75)
        if env.is_main:
            request_requeue()
        return EXIT_REQUEUE

    if env.is_main:
        meta = {"git": startup["git"], "epochs": progress.epoch, "steps": progress.step}
        meta |= {"final_loss": progress.loss, "val_clip_acc": progress.val_clip_acc}
        meta |= {"init": paths.init, "init_sha256": init_sha, "config_hash": cfg_hash}
        save_finetuned(paths.out, unwrap(model), classes, cfg, meta)
        log.info("wrote %s after %d epochs (%d steps)", paths.out, progress.epoch, progress.step)
    barrier()
    return 0


def cli(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sstl finetune", description=__doc__.split("\n")[0])
    parser.add_argument("--cfg", help="FinetuneConfig as JSON, or @file.yaml (default: defaults)")
    parser.add_argument("--manifest", type=Path, required=True, help="dataset manifest.csv")
    parser.add_argument("--store", type=Path, required=True, help="frame store folder")
    parser.add_argument("--init", required=True, help="pretraining weights.pt, or 'scratch'")
    parser.add_argument("--out", type=Path, required=True, help="fine-tuned weights.pt")
    parser.add_argument("--state-dir", type=Path, required=True, help="resume state folder")
    parser.add_argument("--metrics", type=Path, required=True, help="per-epoch metrics .jsonl")
    parser.add_argument("--tensorboard", type=Path, help="TensorBoard log folder (optional)")
    args = parser.parse_args(argv)
    if args.init != SCRATCH and not Path(args.init).is_file():
        print(f"sstl finetune: --init {args.init} is neither a file nor 'scratch'", file=sys.stderr)
        return 2
    paths = FinetunePaths(
        args.manifest,
        args.store,
        args.out,
        args.state_dir,
        args.metrics,
        args.tensorboard,
        init=args.init,
    )
    try:
        return main(finetune_config(parse_cfg(args.cfg)), paths)
    except ConfigError as err:
        print(f"sstl finetune: {err}", file=sys.stderr)
        return 2
