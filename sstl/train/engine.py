"""The one training engine ``sstl pretrain`` and ``sstl finetune`` both run on.

A stage supplies a :class:`Job` (its loader, its step, the state it saves, its final output); the
engine does everything else, the same way for both:

1. preemption: SIGTERM / SIGUSR1 set a flag from the first moment (a signal during start-up is
   caught too); the loop checks it at step boundaries (all ranks agree), saves and exits 75;
   loader workers ignore both signals (:mod:`sstl.train.loaders`) and are killed on the way out;
2. the process group (torchrun, srun or one process) and the device; :func:`wrap` (SyncBN + DDP)
   and :func:`autocast` (bf16 on CUDA) for the stage's model; rank 0 holds the state folder's
   lock (:mod:`sstl.train.runlock`: a second run of the same job refuses, naming the holder) and
   removes the temporary files a killed save left there;
3. resume: ``state_dir/resume.pt`` is loaded when its identity (the config less execution-only
   keys, plus the data) matches the job's; another job's state is moved aside to
   ``resume.pt.stale-<hash>`` and the run starts afresh;
4. the loop: epochs of the resumable sampler, a metrics line every ``run.log_every`` steps, an
   epoch record after each epoch (means of the step logs, plus what the stage's ``end_epoch``
   adds, e.g. validation), an atomic save every ``run.save_every`` steps, at each epoch end, on
   preemption and at the end (kept after success: a rerun of the same job only rewrites the
   output);
5. the final writes, on rank 0, only when the run completed: the training curves (CSV + PNG,
   :mod:`sstl.train.curves`, from the whole run's logs, so they span resumes), then the output.

The resume state holds the step's state (model, optimiser, schedule, memory bank), the RNG states
of every generator, the position in the run (epoch, batch within it, step, the epoch's running
sums) and the identity hash, so a resumed run continues bit for bit at the same thread count.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

from sstl.collectives import barrier
from sstl.config import ConfigError, RunConfig
from sstl.files import config_hash, remove_stale_tmp, save_atomic
from sstl.runtime import log_startup, seed_everything, setup_logging
from sstl.train import checkpoint as ckpt
from sstl.train.curves import write_curves
from sstl.train.distributed import (
    DistEnv,
    ResumableSampler,
    cleanup,
    convert_sync_batchnorm,
    detect_env,
    init_distributed,
)
from sstl.train.preempt import EXIT_REQUEUE, Preemption, request_requeue, stop_workers
from sstl.train.progress import Progress, RunPaths
from sstl.train.runlock import RunLock

log = logging.getLogger(__name__)


class Stateful(Protocol):
    def state_dict(self) -> dict[str, Any]: ...
    def load_state_dict(self, state: dict[str, Any]) -> Any: ...


@dataclass
class Job:
    """What a stage hands the engine."""

    dataset: Any  # the training dataset (``set_epoch`` draws new windows)
    sampler: ResumableSampler
    loader: DataLoader
    step: Callable[[dict[str, Any], int], dict[str, float]]  # (batch, step) -> logs, loss_total
    lr: Callable[[], float]  # the learning rate the next step trains with
    state: Stateful  # what the step needs saved: model, optimiser, schedule, memory bank
    identity: dict[str, Any]  # what a resume state must match
    finish: Callable[[dict[str, Any]], None]  # writes the output (rank 0), given the run's meta
    end_epoch: Callable[[int, bool], dict[str, Any]] | None = None  # (epochs done, last) -> record
    clips_per_step: int = 0  # clips of one global step, for clips/s


def wrap(model: nn.Module, env: DistEnv) -> nn.Module:
    """The model as it trains in this job: SyncBN + DDP when distributed, else itself."""
    if not env.distributed:
        return model
    model = convert_sync_batchnorm(model, env.device)  # BN statistics over the global batch
    ids = [env.device.index] if env.device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


def autocast(run: RunConfig, device: torch.device) -> torch.autocast:
    """bf16 autocast on CUDA when ``run.amp`` (bf16 has fp32's range: no loss scaling needed)."""
    return torch.autocast(
        device.type, dtype=torch.bfloat16, enabled=run.amp and device.type == "cuda"
    )


def check_batch(batch_size: int, world_size: int) -> None:
    if batch_size % world_size:
        raise ConfigError(
            f"optim.batch_size = {batch_size} is not allowed: it is the global batch and must be "
            f"divisible by the {world_size} processes of this job"
        )


def run(
    name: str,
    cfg_dict: dict[str, Any],
    run_cfg: RunConfig,
    epochs: int,
    batch_size: int,
    paths: RunPaths,
    build: Callable[[DistEnv], Job],
) -> int:
    """Train ``name`` (``pretrain`` | ``finetune``) to the end, or until preempted.

    ``build(env)`` makes the stage's job once the process group is up and the seeds are set.
    Returns 0, or 75 (:data:`EXIT_REQUEUE`) when preempted with the state saved.
    """
    setup_logging()
    with Preemption() as preempt, contextlib.ExitStack() as stack:
        check_batch(batch_size, detect_env(run_cfg.device).world_size)  # before joining a group
        env = init_distributed(run_cfg.device)
        stack.callback(cleanup)
        stack.callback(stop_workers)  # they ignore SIGTERM: left alive, they would hang the exit
        if env.is_main:  # one writer per state folder; then its dead writes' leftovers can go
            stack.enter_context(RunLock(paths.state_dir))
            remove_stale_tmp(paths.state_dir, exclusive=True)
        return _train(name, cfg_dict, run_cfg, epochs, paths, build, env, preempt)


def _train(name, cfg_dict, run_cfg, epochs, paths, build, env, preempt) -> int:
    startup = log_startup(name, cfg_dict)
    seed_everything(run_cfg.seed, deterministic=run_cfg.deterministic)
    torch.backends.cudnn.benchmark = not run_cfg.deterministic
    job = build(env)
    identity = config_hash(job.identity)
    progress = _resume(job, paths, identity, env)

    saved: list[tuple[int, int, int]] = []

    def save() -> None:
        where = (progress.epoch, progress.batch, progress.step)
        if saved[-1:] == [where]:
            return  # e.g. a periodic save at the step where the run then stops
        saved.append(where)
        if env.is_main:
            extra = {"rng": ckpt.capture_rng(), "progress": dataclasses.asdict(progress)}
            extra |= {"config_hash": identity, "world_size": env.world_size}
            save_atomic({**job.state.state_dict(), **extra}, paths.state)

    logs = ckpt.MetricsLog(paths.metrics, paths.tensorboard, progress.step, name, env.is_main)
    # TensorBoard: the epoch records are a run of their own ("epochs": one writer per folder,
    # or one writer's purge on resume would drop the other's events), under the same tags, so
    # the epoch means overlay the step values; validation accuracy is only here
    epoch_tb = paths.tensorboard / "epochs" if paths.tensorboard is not None else None
    epoch_log = ckpt.MetricsLog(paths.epochs, epoch_tb, progress.step, name, env.is_main)
    status = "epoch"
    with logs, epoch_log:
        while status == "epoch" and progress.epoch < epochs:
            if preempt.should_stop(env.device):  # e.g. a signal during start-up or validation
                status = "preempted"
                break
            job.sampler.set_epoch(progress.epoch, start_batch=progress.batch)
            job.dataset.set_epoch(progress.epoch)
            t0 = time.perf_counter()
            status = _epoch(job, progress, run_cfg, env, logs, save, preempt)
            if status == "epoch":
                progress.epoch, progress.batch = progress.epoch + 1, 0
            if status != "preempted":  # max_steps ends mid-epoch: that epoch's record is the last
                record = _epoch_record(
                    job, progress, status == "max_steps" or progress.epoch == epochs
                )
                epoch_log.write({**record, "epoch_s": time.perf_counter() - t0})
                log.info("epoch %d: %s", progress.epoch, record)
                progress.sums = {}
            save()
            barrier()
    if status == "preempted":
        save()
        barrier()  # the state is on disk before any rank exits (torchrun kills the others)
        log.warning("stopped by %s after step %d: exit %d", preempt.describe(), progress.step, 75)
        if env.is_main:
            request_requeue()
        return EXIT_REQUEUE
    if env.is_main and paths.curves is not None:
        steps, epochs = ckpt.read_records(paths.metrics), ckpt.read_records(paths.epochs)
        title = f"{name}: {paths.out.parent}"
        write_curves(steps, epochs, title, paths.curves, validates=job.end_epoch is not None)
    if env.is_main:
        meta = {"git": startup["git"], "steps": progress.step, "epochs": progress.epoch}
        meta |= {"final_loss": progress.loss, "config_hash": identity, "world_size": env.world_size}
        job.finish(meta)
        log.info("wrote %s: %d steps, loss %.4f", paths.out, progress.step, progress.loss)
    barrier()
    return 0


def _resume(job: Job, paths: RunPaths, identity: str, env: DistEnv) -> Progress:
    """The saved progress (state loaded into the job, RNG restored), or a fresh start."""
    state = ckpt.load_state(paths.state)
    if state is not None and state.get("config_hash") != identity:
        barrier()  # every rank has read the state before rank 0 moves it
        if env.is_main:
            stale = ckpt.move_aside(paths.state, str(state.get("config_hash")))
            log.warning("resume state is from another config or data: moved aside to %s", stale)
        return Progress()
    if state is None:
        return Progress()
    job.state.load_state_dict(state)
    ckpt.restore_rng(state["rng"])
    progress = Progress(**state["progress"])
    log.info(
        "resuming at epoch %d batch %d (step %d)", progress.epoch, progress.batch, progress.step
    )
    return progress


def _epoch(job, progress, run_cfg, env, logs, save, preempt) -> str:
    """Run the rest of ``progress.epoch``: "epoch" (done), "max_steps" or "preempted"."""
    bar = tqdm(
        total=len(job.loader) + progress.batch,
        initial=progress.batch,
        desc=f"epoch {progress.epoch}",
        disable=not env.is_main,
        file=sys.stderr,
        mininterval=1 if sys.stderr.isatty() else 60,  # a log file gets a line a minute
    )
    t_data = time.perf_counter()
    try:
        for batch in job.loader:
            t_step = time.perf_counter()
            lr = job.lr()  # the rate this step trains with (the step advances the schedule)
            values = job.step(batch, progress.step)
            progress.step, progress.batch = progress.step + 1, progress.batch + 1
            progress.loss = values["loss_total"]
            for key, value in values.items():
                progress.sums[key] = progress.sums.get(key, 0.0) + value
            progress.sums["n"] = progress.sums.get("n", 0.0) + 1
            t_end = time.perf_counter()
            bar.update(1)
            bar.set_postfix(loss=f"{progress.loss:.4f}")
            if progress.step % run_cfg.log_every == 0:
                record = {"step": progress.step, "epoch": progress.epoch, "lr": lr, **values}
                if job.clips_per_step:
                    record["clips_per_s"] = job.clips_per_step / (t_end - t_data)
                logs.write({**record, "data_s": t_step - t_data, "step_s": t_end - t_step})
            if progress.step % run_cfg.save_every == 0:
                save()
            if preempt.should_stop(env.device):
                return "preempted"
            if 0 < run_cfg.max_steps <= progress.step:
                return "max_steps"
            t_data = time.perf_counter()
    finally:
        bar.close()
    return "epoch"


def _epoch_record(job: Job, progress: Progress, last: bool) -> dict[str, Any]:
    n = progress.sums.get("n", 0.0)
    means = {k: v / n for k, v in progress.sums.items() if k != "n"} if n else {}
    record = {"step": progress.step, "epoch": progress.epoch, **means}
    if job.end_epoch is not None:
        record |= job.end_epoch(progress.epoch, last)
    return record
