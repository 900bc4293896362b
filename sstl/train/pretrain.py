"""``sstl pretrain``: SSTL self-supervised pretraining, resumable and preemptible.

Launch with ``torchrun`` or ``srun`` for several GPUs (see :mod:`sstl.train.distributed`); every
rank reads the resume state, so ``--state-dir`` must be on a filesystem all nodes share. The loop,
resume and preemption are the engine's (:mod:`sstl.train.engine`); the method is
:class:`sstl.method.SSTL`. This file supplies what is particular to pretraining:

- data: the manifest's ``cfg.split`` rows with status ok, one memory-bank row per video (index =
  row), one random window per video per epoch cut into two temporal views in the loader workers;
- the step: both views' spatial augmentation on the device, the method's loss, SGD and the lr
  schedule;
- the resume identity: the config less execution-only keys (``run.workers/save_every/log_every/
  max_steps``) and the list of videos;
- the output: the encoder's weights file (:func:`sstl.models.weights.save_pretrained`).
"""

from __future__ import annotations

from typing import Any

from sstl.augment.spatial import SpatialAugment
from sstl.config import PretrainConfig, load_section, to_dict
from sstl.data.clips import ClipDataset, load_manifest
from sstl.method import SSTL
from sstl.models.sstl import unwrap
from sstl.models.weights import save_pretrained
from sstl.runtime import cfg_help, command_parser, parse_cfg
from sstl.train import checkpoint as ckpt
from sstl.train import engine
from sstl.train.batches import PretrainTransform, augment_views, step_generator
from sstl.train.distributed import DistEnv
from sstl.train.loaders import train_loader
from sstl.train.optim import build_optimizer, build_scheduler
from sstl.train.progress import RunPaths, add_run_arguments


class PretrainStep:
    """One optimizer step of SSTL: augment on the device, the method's loss, backward, SGD.

    ``__call__(batch, step)``: ``batch`` as collated from ``ClipDataset`` with
    :class:`~sstl.train.batches.PretrainTransform` (``frames [B, 2, T, H, W, 3] uint8``,
    ``spatial``, ``rate [B, 2]``, ``index [B]``, ``position [B]``) -> the loss parts as floats
    (``loss_ctr``, ``loss_video``, ``loss_spd``, ``loss_total``), identical on every rank.
    """

    def __init__(
        self, cfg: PretrainConfig, env: DistEnv, num_videos: int, steps_per_epoch: int
    ) -> None:
        self.cfg, self.env = cfg, env
        self.method = SSTL(
            cfg.model,
            cfg.memory,
            cfg.loss,
            num_videos,
            speed_distortion=cfg.temporal.speed_distortion,
            seed=cfg.run.seed,
        ).to(env.device)
        self.method.encoder = engine.wrap(self.method.encoder, env)
        self.augment = SpatialAugment(cfg.spatial)  # no parameters: it runs on the clips' device
        self.optimizer = build_optimizer(self.method.encoder, cfg.optim)
        self.scheduler = build_scheduler(self.optimizer, cfg.optim, steps_per_epoch)

    def __call__(self, batch: dict[str, Any], step: int) -> dict[str, float]:
        device = self.env.device
        clips = augment_views(self.augment, batch, device)  # (2B, 3, T, S, S)
        negatives = step_generator(self.cfg.run.seed, step, device)
        with engine.autocast(self.cfg.run, device):
            total, logs = self.method(clips, batch, negatives)
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        self.optimizer.step()
        self.scheduler.step()
        return {f"loss_{k}": v for k, v in logs.items()}

    def lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    def state_dict(self) -> dict[str, Any]:
        bank = self.method.bank
        return {
            "model": unwrap(self.method.encoder).state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "memory": bank.state_dict() if bank is not None else None,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        unwrap(self.method.encoder).load_state_dict(state["model"])  # in place: DDP sees it too
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.method.bank is not None:
            self.method.bank.load_state_dict(state["memory"])


def identity(cfg: PretrainConfig, video_ids: list[str]) -> dict[str, Any]:
    """What a resume state must match: the config less execution-only keys, and the videos."""
    return {"config": ckpt.resume_config(to_dict(cfg)), "videos": list(video_ids)}


def build_job(cfg: PretrainConfig, paths: engine.RunPaths, env: DistEnv) -> engine.Job:
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
        workers=cfg.run.workers,
        prefetch_factor=4,
    )
    step = PretrainStep(cfg, env, len(dataset), sampler.batches_per_epoch())
    cfg_dict = to_dict(cfg)

    def finish(meta: dict[str, Any]) -> None:
        save_pretrained(paths.out, step.method.encoder, cfg_dict, meta)

    return engine.Job(
        dataset=dataset,
        sampler=sampler,
        loader=loader,
        step=step,
        lr=step.lr,
        state=step,
        identity=identity(cfg, dataset.ids),
        finish=finish,
        clips_per_step=2 * cfg.optim.batch_size,  # two views per video, global batch
    )


def main(cfg: PretrainConfig, paths: engine.RunPaths) -> int:
    """Pretrain (or resume), write ``paths.out``; returns 0, or 75 when preempted."""
    return engine.run(
        "pretrain",
        to_dict(cfg),
        cfg.run,
        cfg.optim.epochs,
        cfg.optim.batch_size,
        paths,
        lambda env: build_job(cfg, paths, env),
    )


def cli(argv: list[str] | None = None) -> int:
    parser = command_parser(
        "sstl pretrain",
        "Self-supervised SSTL pretraining of a video encoder on a dataset's training videos\n"
        "(labels unused). Runs on one CPU or GPU, or on many GPUs when started by torchrun or\n"
        "srun. Saves a resume state every run.save_every steps: run the same command again and it\n"
        "continues where it stopped; on SIGTERM / SIGUSR1 it saves and exits with code 75.\n\n"
        "Writes OUT (the encoder's weights, at the end), the resume state in STATE_DIR, a line\n"
        "of losses and learning rate every run.log_every steps to METRICS (epoch means beside\n"
        "it in epochs.jsonl) and, when asked, TensorBoard scalars and the training curves\n"
        "(CSV tables and a PNG of the loss terms and learning rate, written at the end).",
        "sstl pretrain --cfg @my-pretrain.yaml --manifest data/ucf101/manifest.csv\n"
        "--store data/ucf101/store --out runs/pretrain/mine/weights.pt\n"
        "--state-dir state/pretrain/mine --metrics state/pretrain/mine/metrics.jsonl",
    )
    parser.add_argument("--cfg", help=cfg_help("pretrain"))
    add_run_arguments(parser)
    args = parser.parse_args(argv)
    paths = RunPaths.from_args(args)
    return main(load_section(PretrainConfig, parse_cfg(args.cfg)), paths)
