"""``sstl pretrain``: SSTL self-supervised pretraining (METHOD §2-§7), resumable and preemptible.

    sstl pretrain --cfg JSON --manifest CSV --store DIR --out weights.pt --state-dir DIR \
        --metrics FILE.jsonl [--tensorboard DIR]

Launch with ``torchrun`` or ``srun`` for several GPUs (see :mod:`sstl.train.distributed`); every
rank reads the resume state, so ``--state-dir`` must be on a filesystem all nodes share. The
per-step computation lives in :mod:`sstl.train.step`; this file is the loop around it:

- data: the manifest's train rows with status ok, one memory-bank row per video (index = row);
- resume: ``--state-dir/resume.pt`` holds model, optimizer, scheduler, scaler, memory bank, RNG,
  epoch, batch within the epoch and global step, written atomically every ``run.save_every`` steps,
  at epoch ends, on preemption and at the end (it is kept after success: a rerun with the same
  config then only rewrites ``--out``). A state from another config (hash of every setting except
  ``run.workers/save_every/log_every/max_steps``, plus the list of videos) is moved aside to
  ``resume.pt.stale-<hash>`` and the run starts afresh;
- preemption: SIGTERM / SIGUSR1 -> state saved at the next step boundary, exit code 75;
- ``--out`` (weights + meta: git sha, steps, final loss, config hash) is written only at the end.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from sstl.config import ConfigError, PretrainConfig, load_section, to_dict
from sstl.data.clips import ClipDataset, collate, load_manifest
from sstl.models.sstl import save_weights
from sstl.runtime import log_startup, parse_cfg, seed_everything, setup_logging
from sstl.train import checkpoint as ckpt
from sstl.train.distributed import (
    DistEnv,
    ResumableSampler,
    barrier,
    cleanup,
    detect_env,
    init_distributed,
)
from sstl.train.loaders import train_loader
from sstl.train.preempt import (
    EXIT_REQUEUE,
    Preemption,
    ignore_in_worker,
    request_requeue,
    stop_workers,
)
from sstl.train.progress import Progress, RunPaths
from sstl.train.step import PretrainTransform, StepParts, build_parts, train_step

log = logging.getLogger(__name__)


PretrainPaths = RunPaths  # pretraining takes only the files every run has


def resume_hash(cfg: PretrainConfig, video_ids: Sequence[str]) -> str:
    """What a resume state must match: the config (less execution-only keys) and the videos."""
    d = ckpt.resume_config(to_dict(cfg))
    return ckpt.config_hash({"config": d, "videos": list(video_ids)})


def check_settings(cfg: PretrainConfig, world_size: int) -> None:
    """Cross-setting checks the dataclasses cannot make; raises ConfigError naming the setting."""
    if cfg.optim.batch_size % world_size:
        raise ConfigError(
            f"optim.batch_size = {cfg.optim.batch_size} is not allowed: it is the global batch "
            f"and must be divisible by the {world_size} processes of this job"
        )


def build_loader(
    cfg: PretrainConfig, paths: PretrainPaths, env: DistEnv
) -> tuple[ClipDataset, ResumableSampler, DataLoader]:
    """The manifest's ``cfg.split`` rows with status ok; item number = memory-bank row."""
    dataset = ClipDataset(
        load_manifest(paths.manifest, split=cfg.split),  # the dataset drops rows not ok
        paths.store,
        mode="window",
        clip_len=cfg.temporal.clip_len,
        window=cfg.temporal.window,
        transform=PretrainTransform(cfg.temporal, cfg.spatial),  # runs in the loader workers
        seed=cfg.run.seed,
    )
    sampler, loader = train_loader(
        dataset,
        env,
        cfg.optim.batch_size,
        cfg.run.seed,
        f"'{cfg.split}' videos with status ok in {paths.manifest}",
        num_workers=cfg.run.workers,
        collate_fn=collate,
        worker_init_fn=ignore_in_worker,  # a preempted job's workers live until the state is saved
        prefetch_factor=4 if cfg.run.workers else None,
    )
    return dataset, sampler, loader


def train_one_epoch(
    parts: StepParts,
    loader: DataLoader,
    progress: Progress,
    metrics: ckpt.MetricsLog,
    save: Callable[[], None],
    preempt: Preemption,
) -> str:
    """Run the rest of ``progress.epoch``; returns "epoch" (done), "max_steps" or "preempted"."""
    cfg, env = parts.cfg, parts.env
    parts.model.train()
    clips = 2 * cfg.optim.batch_size  # two views per video, global batch
    bar = tqdm(
        total=len(loader) + progress.batch,
        initial=progress.batch,
        desc=f"epoch {progress.epoch}",
        disable=not env.is_main,
        file=sys.stderr,
        mininterval=1 if sys.stderr.isatty() else 60,  # a log file gets a line a minute
    )
    t_data = time.perf_counter()
    for batch in loader:
        t_step = time.perf_counter()
        logs = train_step(parts, batch, progress.step)
        progress.step += 1
        progress.batch += 1
        progress.loss = logs["total"]
        t_end = time.perf_counter()
        bar.update(1)
        bar.set_postfix(loss=f"{logs['total']:.4f}")
        if progress.step % cfg.run.log_every == 0:
            metrics.write(
                {
                    "step": progress.step,
                    "epoch": progress.epoch,
                    "lr": parts.optimizer.param_groups[0]["lr"],
                    **{f"loss_{k}": v for k, v in logs.items()},
                    "clips_per_s": clips / (t_end - t_data),
                    "data_s": t_step - t_data,
                    "step_s": t_end - t_step,
                }
            )
        if progress.step % cfg.run.save_every == 0:
            save()
        if preempt.should_stop(env.device):
            bar.close()
            return "preempted"
        if 0 < cfg.run.max_steps <= progress.step:
            bar.close()
            return "max_steps"
        t_data = time.perf_counter()
    bar.close()
    return "epoch"


def main(cfg: PretrainConfig, paths: PretrainPaths) -> int:
    """Pretrain (or resume), write ``paths.out``; returns 0, or 75 when preempted."""
    setup_logging()
    check_settings(cfg, detect_env(cfg.run.device).world_size)  # before joining any group
    env = init_distributed(cfg.run.device)
    try:
        return _pretrain(cfg, paths, env)
    finally:
        stop_workers()  # they ignore SIGTERM: left alive, they would hang the exit
        cleanup()


def _pretrain(cfg: PretrainConfig, paths: PretrainPaths, env: DistEnv) -> int:
    cfg_dict = to_dict(cfg)
    startup = log_startup("pretrain", cfg_dict)
    seed_everything(cfg.run.seed, deterministic=cfg.run.deterministic)
    torch.backends.cudnn.benchmark = not cfg.run.deterministic

    dataset, sampler, loader = build_loader(cfg, paths, env)
    cfg_hash = resume_hash(cfg, dataset.ids)  # another config or other videos: start afresh
    parts = build_parts(cfg, env, len(dataset), sampler.batches_per_epoch())

    # resume where a previous run of the same config stopped; set another config's state aside
    progress = Progress()
    state = ckpt.load_state(paths.state)
    if state is not None and state["config_hash"] != cfg_hash:
        barrier()  # every rank has read the state before rank 0 moves it
        if env.is_main:
            stale = ckpt.move_aside(paths.state, state["config_hash"])
            log.warning("resume state is from another config: moved aside to %s", stale)
        state = None
    if state is not None:
        parts.load_state_dict(state)
        ckpt.restore_rng(state["rng"])
        progress = Progress(**state["progress"])
        log.info("resuming at epoch %d batch %d (step %d)", *dataclasses.astuple(progress)[:3])

    def save() -> None:
        if env.is_main:
            extra = {"rng": ckpt.capture_rng(), "progress": dataclasses.asdict(progress)}
            extra |= {"config_hash": cfg_hash, "world_size": env.world_size}
            ckpt.save_atomic({**parts.state_dict(), **extra}, paths.state)

    metrics = ckpt.MetricsLog(
        paths.metrics, paths.tensorboard, progress.step, "pretrain", enabled=env.is_main
    )
    status = "epoch"
    with Preemption() as preempt, metrics:
        while status == "epoch" and progress.epoch < cfg.optim.epochs:
            sampler.set_epoch(progress.epoch, start_batch=progress.batch)
            dataset.set_epoch(progress.epoch)
            status = train_one_epoch(parts, loader, progress, metrics, save, preempt)
            if status == "epoch":
                progress.epoch, progress.batch = progress.epoch + 1, 0
            save()
    if status == "preempted":
        barrier()  # the state is on disk before any rank exits (torchrun kills the others)
        log.warning("stopped by %s after step %d", preempt.describe(), progress.step)
        if env.is_main:
            request_requeue()
        return EXIT_REQUEUE

    if env.is_main:
        meta = {"git": startup["git"], "steps": progress.step, "epochs": progress.epoch}
        meta |= {"final_loss": progress.loss, "config_hash": cfg_hash, "world_size": env.world_size}
        save_weights(paths.out, parts.model, cfg_dict, meta)
        log.info("wrote %s: %d steps, loss %.4f", paths.out, progress.step, progress.loss)
    barrier()
    return 0


def cli(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sstl pretrain", description=__doc__.split("\n")[0])
    parser.add_argument("--cfg", help="PretrainConfig as JSON, or @file.yaml (default: defaults)")
    parser.add_argument("--manifest", type=Path, required=True, help="dataset manifest.csv")
    parser.add_argument("--store", type=Path, required=True, help="frame store folder")
    parser.add_argument("--out", type=Path, required=True, help="final weights.pt")
    parser.add_argument("--state-dir", type=Path, required=True, help="resume state folder")
    parser.add_argument("--metrics", type=Path, required=True, help="per-step metrics .jsonl")
    parser.add_argument("--tensorboard", type=Path, help="TensorBoard log folder (optional)")
    args = parser.parse_args(argv)
    paths = PretrainPaths(
        args.manifest, args.store, args.out, args.state_dir, args.metrics, args.tensorboard
    )
    try:
        return main(load_section(PretrainConfig, parse_cfg(args.cfg)), paths)
    except ConfigError as err:
        print(f"sstl pretrain: {err}", file=sys.stderr)
        return 2
