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
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

from sstl.augment.spatial import SpatialAugment
from sstl.config import ConfigError, FinetuneConfig, SpatialConfig, load_section, to_dict
from sstl.data.clips import ClipDataset, collate, load_manifest
from sstl.data.extract import sha256_file
from sstl.eval.features import extract_features
from sstl.models.sstl import Finetuner, backbone_state_dict, load_weights, unwrap
from sstl.runtime import log_startup, parse_cfg, seed_everything, setup_logging
from sstl.train import checkpoint as ckpt
from sstl.train.distributed import (
    DistEnv,
    ResumableSampler,
    barrier,
    cleanup,
    convert_sync_batchnorm,
    init_distributed,
)
from sstl.train.preempt import EXIT_REQUEUE, Preemption, request_requeue
from sstl.train.step import build_optimizer, build_scheduler

log = logging.getLogger(__name__)

SCRATCH = "scratch"
BACKBONE_KEYS = ("arch", "width", "stem_pool")  # model settings that shape the backbone


@dataclass
class FinetunePaths:
    manifest: Path
    store: Path
    init: str  # pretraining weights file, or "scratch"
    out: Path
    state_dir: Path
    metrics: Path
    tensorboard: Path | None = None

    @property
    def state(self) -> Path:
        return self.state_dir / "resume.pt"


@dataclass
class Progress:
    epoch: int = 0
    batch: int = 0  # batches of ``epoch`` already consumed
    step: int = 0
    loss: float = float("nan")  # mean training loss of the last finished epoch
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


class FinetuneTransform:
    """Loader-worker transform: draw the window's spatial parameters from its own generator.

    ``{"frames": [T, H, W, 3] uint8, "generator"}`` -> adds ``spatial``: a dict of scalar tensors
    that :meth:`SpatialAugment.apply` consumes on the device after collation (``[B]`` each).
    """

    def __init__(self, spatial: SpatialConfig) -> None:
        self.augment = SpatialAugment(spatial)

    def __call__(self, sample: dict[str, Any]) -> dict[str, Any]:
        if self.augment.cfg.enabled:
            _, h, w, _ = sample["frames"].shape
            params = self.augment.sample_params(1, h, w, sample.get("generator"))
            sample["spatial"] = {k: v[0] for k, v in params.items()}
        return sample


def augment_batch(
    augment: SpatialAugment, batch: dict[str, Any], device: torch.device
) -> torch.Tensor:
    """``frames [B, T, H, W, 3] uint8`` -> ``[B, 3, T, S, S]`` float on ``device``."""
    frames = batch["frames"].to(device, non_blocking=True)
    if not augment.cfg.enabled:
        return augment(frames)  # centre crop + normalise
    return augment.apply(frames, batch["spatial"])


def build_model(cfg: FinetuneConfig, init: str, num_classes: int) -> tuple[Finetuner, str]:
    """Finetuner with the pretrained backbone (or random init); returns it and the init's sha256."""
    model = Finetuner(cfg.model, num_classes, cfg.dropout)
    if init == SCRATCH:
        log.info("init: scratch (random backbone)")
        return model, SCRATCH
    pretrained, _, _ = load_weights(init)
    for key in BACKBONE_KEYS:
        mine, theirs = getattr(cfg.model, key), getattr(pretrained.cfg, key)
        if mine != theirs:
            raise ConfigError(
                f"model.{key} = {mine!r} is not allowed: the pretraining weights {init} were "
                f"trained with model.{key} = {theirs!r}; fine-tune with the same backbone"
            )
    model.load_backbone(backbone_state_dict(init))
    log.info("init: backbone from %s", init)
    return model, sha256_file(init)


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
    progress: Progress,
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


def build_loaders(
    cfg: FinetuneConfig, paths: FinetunePaths, env: DistEnv, manifest: pd.DataFrame
) -> tuple[ClipDataset, ResumableSampler, DataLoader, DataLoader | None]:
    train = ClipDataset(
        manifest[manifest["split"] == "train"].reset_index(drop=True),
        paths.store,
        mode="window",
        clip_len=cfg.clip_len,
        window=cfg.clip_len,
        transform=FinetuneTransform(cfg.spatial),
        seed=cfg.run.seed,
    )
    batch_per_rank = cfg.optim.batch_size // env.world_size
    sampler = ResumableSampler(train, env, batch_per_rank, seed=cfg.run.seed)
    if sampler.batches_per_epoch() == 0:
        raise ConfigError(
            f"optim.batch_size = {cfg.optim.batch_size} is larger than the {len(train)} train "
            f"videos with status ok in {paths.manifest}: lower it"
        )
    common = {"num_workers": cfg.run.workers, "collate_fn": collate}
    common["pin_memory"] = env.device.type == "cuda"
    loader = DataLoader(train, batch_size=batch_per_rank, sampler=sampler, drop_last=True, **common)
    test_rows = manifest[(manifest["split"] == "test") & (manifest["status"] == "ok")]
    val_loader = None
    if test_rows.empty:
        log.warning("no test videos with status ok in %s: validation is skipped", paths.manifest)
    elif env.is_main:
        test = ClipDataset(
            test_rows.reset_index(drop=True), paths.store, "uniform", cfg.clip_len, num_clips=1
        )
        val_loader = DataLoader(test, batch_size=batch_per_rank, shuffle=False, **common)
    return train, sampler, loader, val_loader


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

    progress = Progress()
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
        progress = Progress(**state["progress"])
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


def save_finetuned(
    path: str | Path, model: Finetuner, classes: list[str], cfg: FinetuneConfig, meta: dict
) -> None:
    """The fine-tuned weights file (plain dict, ``torch.load(weights_only=True)`` reads it)."""
    ckpt.save_atomic(
        {
            "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "num_classes": len(classes),
            "classes": list(classes),
            "model_cfg": to_dict(model.cfg),
            "dropout": cfg.dropout,
            "config": to_dict(cfg),
            "meta": meta,
        },
        path,
    )


def load_finetuned(path: str | Path) -> tuple[Finetuner, list[str], dict[str, Any]]:
    """Rebuild a fine-tuned model: ``(Finetuner on CPU, class names, meta)``."""
    from sstl.config import ModelConfig  # local: only the loader needs the class

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"fine-tuned weights {path} do not exist: run `sstl finetune`")
    payload = torch.load(path, map_location="cpu", weights_only=True)
    keys = ("model", "num_classes", "classes", "model_cfg", "dropout", "meta")
    missing = [k for k in keys if not isinstance(payload, dict) or k not in payload]
    if missing:
        raise ValueError(f"{path} is not a fine-tuned weights file (no {missing}): `sstl finetune`")
    model_cfg = load_section(ModelConfig, payload["model_cfg"], "model")
    model = Finetuner(model_cfg, payload["num_classes"], payload["dropout"])
    model.load_state_dict(payload["model"])
    return model, list(payload["classes"]), payload["meta"]


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
        args.init,
        args.out,
        args.state_dir,
        args.metrics,
        args.tensorboard,
    )
    try:
        return main(finetune_config(parse_cfg(args.cfg)), paths)
    except ConfigError as err:
        print(f"sstl finetune: {err}", file=sys.stderr)
        return 2
