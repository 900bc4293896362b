"""``sstl features``: clip- and video-level features of any video files, from a pretrained model.

Each video is decoded with PyAV (:mod:`sstl.data.video`) twice: once to count its frames (many
containers do not say, or say wrong), once to read ``clips`` runs of ``clip_len`` consecutive
frames uniformly spaced over it (:func:`sstl.data.clips.uniform_clips`), resized so the short side
is ``round(crop_size * 128 / 112)`` and centre cropped to ``crop_size``: the frames evaluation
sees (frame store at short side 128, centre crop 112). Decoding runs in DataLoader workers; the
clips go through the model in batches (:func:`sstl.models.features.extract_features`).

A video that cannot be decoded is named with the reason and skipped; the others are written, and
the command then fails (exit 1) naming every skipped video, so a script notices.

Output (``.npz``, read with ``numpy.load``): ``video_features [N, D]`` (the mean of the video's
clip features), ``clip_features [N, K, D]``, ``clip_starts [N, K]`` (first frame of each clip),
``num_frames [N]``, ``paths [N]`` (as given), ``failed`` / ``failed_reasons`` (skipped videos),
``meta`` (JSON: weights file and sha256, layer, clips, clip length, crop, short side).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, default_collate

from sstl.augment.spatial import PAPER_CROP, STORE_SHORT_SIDE
from sstl.config import ConfigError
from sstl.data.clips import uniform_clips
from sstl.data.video import VideoDecodeError, iter_frames, probe
from sstl.files import sha256_file, tmp_name
from sstl.models.features import extract_features
from sstl.models.weights import read_pretrained
from sstl.runtime import UserError, command_parser, log_startup, resolve_device, setup_logging

log = logging.getLogger(__name__)


def short_side_for(crop_size: int) -> int:
    """The short side frames are resized to before a ``crop_size`` centre crop (128 for 112)."""
    return round(crop_size * STORE_SHORT_SIDE / PAPER_CROP)


def square(frames: np.ndarray, crop_size: int) -> np.ndarray:
    """``[F, H, W, 3]`` with short side ``s`` -> ``[F, s, s, 3]``, cut so that the centre
    ``crop_size`` crop of the square is the centre ``crop_size`` crop of the frame (the batched
    crop then lands where evaluation's does)."""
    h, w = frames.shape[1:3]
    s = min(h, w)
    inner = round((s - crop_size) / 2)
    top, left = round((h - crop_size) / 2) - inner, round((w - crop_size) / 2) - inner
    return frames[:, top : top + s, left : left + s]


class VideoClips(Dataset):
    """Video files -> ``clips`` uniformly spaced clips of ``clip_len`` frames each.

    Item: ``frames [K, T, s, s, 3]`` uint8, ``starts [K]``, ``num_frames``, ``index``, ``label``
    (-1), or ``{"index", "error"}`` when the video cannot be decoded.
    """

    def __init__(self, paths: list[Path], clip_len: int, clips: int, crop_size: int) -> None:
        self.paths, self.clip_len, self.clips, self.crop_size = paths, clip_len, clips, crop_size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> dict[str, Any]:
        path = self.paths[i]
        try:
            n = probe(path).num_frames
            runs = uniform_clips(n, self.clip_len, self.clips)  # K lists of T indices
            wanted, last = {j for run in runs for j in run}, max(max(run) for run in runs)
            got: dict[int, np.ndarray] = {}
            for j, frame in enumerate(iter_frames(path, short_side_for(self.crop_size))):
                if j in wanted:
                    got[j] = frame
                if j == last:
                    break
            if last not in got:  # fewer frames on the second pass than the first
                raise VideoDecodeError(path, f"frame {last} of {n} did not decode again")
        except VideoDecodeError as err:
            return {"index": i, "error": str(err)}
        frames = square(np.stack([got[j] for run in runs for j in run]), self.crop_size)
        frames = frames.reshape(len(runs), self.clip_len, *frames.shape[1:])
        return {
            "frames": torch.from_numpy(np.ascontiguousarray(frames)),
            "starts": torch.tensor([run[0] for run in runs]),
            "num_frames": n,
            "index": i,
            "label": -1,
        }


def collate_videos(items: list[dict[str, Any]]) -> dict[str, Any]:
    """The decodable videos of a batch stacked (``None`` when there are none), and the errors."""
    ok = [item for item in items if "error" not in item]
    errors = [(item["index"], item["error"]) for item in items if "error" in item]
    return {"batch": default_collate(ok) if ok else None, "errors": errors}


class Decoded:
    """The loader's batches less the videos that failed; keeps what extraction does not return:
    errors (logged as they come), clip starts and frame counts."""

    def __init__(self, loader: DataLoader) -> None:
        self.loader = loader
        self.errors: list[tuple[int, str]] = []
        self.starts: dict[int, torch.Tensor] = {}
        self.num_frames: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for out in self.loader:
            for _, error in out["errors"]:
                log.error("%s: skipped", error)
            self.errors += out["errors"]
            batch = out["batch"]
            if batch is None:
                continue
            for k, index in enumerate(batch["index"].tolist()):
                self.starts[index] = batch["starts"][k]
                self.num_frames[index] = int(batch["num_frames"][k])
            yield batch


def video_features(
    weights: Path,
    videos: list[Path],
    *,
    layer: str = "backbone",
    clips: int = 10,
    clip_len: int | None = None,
    crop_size: int | None = None,
    batch_size: int = 4,
    workers: int = 2,
    device: str = "auto",
) -> dict[str, Any]:
    """Features of ``videos`` from the pretrained ``weights`` (module docstring): the arrays of
    the output file, as numpy arrays and lists; ``clip_len`` / ``crop_size`` default to the
    pretraining's."""
    try:
        model, config, _ = read_pretrained(weights)
    except (FileNotFoundError, ValueError) as err:  # absent, or not a pretraining's weights
        raise UserError(str(err)) from None
    clip_len = clip_len or config.get("temporal", {}).get("clip_len", 16)
    crop_size = crop_size or config.get("spatial", {}).get("crop_size", PAPER_CROP)
    dev = resolve_device(device)
    dataset = VideoClips(videos, clip_len, clips, crop_size)
    loader = DataLoader(
        dataset, batch_size=batch_size, num_workers=workers, collate_fn=collate_videos
    )
    decoded = Decoded(loader)
    meta = {
        "weights": str(weights),
        "weights_sha256": sha256_file(weights),
        "layer": layer,
        "clips": clips,
        "clip_len": clip_len,
        "crop_size": crop_size,
        "short_side": short_side_for(crop_size),
    }
    out: dict[str, Any] = {"meta": meta, "paths": [], "failed": [], "failed_reasons": []}
    try:
        feats, _, index = extract_features(model.to(dev), decoded, layer, dev, crop_size)
    except ValueError:  # no batch at all: every video failed
        if decoded.starts or not decoded.errors:
            raise
        feats, index = torch.empty(0, clips, 0), torch.empty(0, dtype=torch.int64)
    rows = index.tolist()
    out["clip_features"] = feats.numpy()  # (N, K, D)
    out["video_features"] = feats.mean(1).numpy()  # (N, D)
    out["clip_starts"] = torch.stack([decoded.starts[i] for i in rows]).numpy() if rows else None
    out["num_frames"] = np.array([decoded.num_frames[i] for i in rows], dtype=np.int64)
    out["paths"] = [str(videos[i]) for i in rows]
    for i, error in sorted(decoded.errors):
        out["failed"].append(str(videos[i]))
        out["failed_reasons"].append(error)
    return out


def write_npz(path: Path, result: dict[str, Any]) -> None:
    """The result as ``.npz`` (tmp file + rename: never half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {k: v for k, v in result.items() if isinstance(v, np.ndarray)}
    arrays |= {k: np.array(result[k], dtype=str) for k in ("paths", "failed", "failed_reasons")}
    arrays["meta"] = np.array(json.dumps(result["meta"], sort_keys=True))
    tmp = tmp_name(path)
    try:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def cli(argv: list[str] | None = None) -> int:
    parser = command_parser(
        "sstl features",
        "Features of your own videos from a pretrained SSTL model: any files PyAV decodes (avi,\n"
        "mp4, mkv, webm, ...), any size. Each video gives CLIPS clips uniformly spaced over it,\n"
        "resized and centre cropped as in evaluation; each clip gives one feature, and the\n"
        "video's feature is the mean of its clips'.\n\n"
        "Writes OUT (.npz): video_features [videos, D], clip_features [videos, clips, D],\n"
        "clip_starts, num_frames, paths, and the settings used (meta). A video that cannot be\n"
        "decoded is named and skipped; the others are written and the exit code is 1.",
        'sstl features "my videos/"*.mp4 clip.avi --weights runs/pretrain/sstl/weights.pt\n'
        "--out features.npz",
    )
    parser.add_argument("videos", nargs="+", type=Path, metavar="VIDEO", help="video files")
    parser.add_argument(
        "--weights", type=Path, required=True, help="a weights file written by `sstl pretrain`"
    )
    parser.add_argument("--out", type=Path, required=True, help="the features file (.npz)")
    parser.add_argument(
        "--layer",
        choices=("backbone", "projection"),
        default="backbone",
        help="backbone: the pooled backbone feature (default); projection: the output of the "
        "projection head (the paper's retrieval feature)",
    )
    parser.add_argument("--clips", type=int, default=10, help="clips per video (default 10)")
    parser.add_argument("--clip-len", type=int, help="frames per clip (default: the pretraining's)")
    parser.add_argument("--crop-size", type=int, help="crop in pixels (default: the pretraining's)")
    parser.add_argument(
        "--batch-size", type=int, default=4, help="videos per forward pass (default 4)"
    )
    parser.add_argument(
        "--workers", type=int, default=2, help="processes decoding videos (default 2)"
    )
    parser.add_argument(
        "--device", choices=("auto", "cpu", "cuda"), default="auto", help="default: auto"
    )
    args = parser.parse_args(argv)
    setup_logging()
    if args.out.suffix != ".npz":
        raise ConfigError(f"--out {args.out}: the features file must end in .npz")
    for name, value in (("clips", args.clips), ("batch-size", args.batch_size)):
        if value < 1:
            raise ConfigError(f"--{name} = {value} is not allowed: an integer >= 1")
    folders = [str(p) for p in args.videos if p.is_dir()]
    if folders:
        raise ConfigError(f"{folders[0]} is a folder: give its video files (e.g. 'DIR'/*.mp4)")
    settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    log_startup("features", {**settings, "videos": [str(p) for p in args.videos]})
    result = video_features(
        args.weights,
        args.videos,
        layer=args.layer,
        clips=args.clips,
        clip_len=args.clip_len,
        crop_size=args.crop_size,
        batch_size=args.batch_size,
        workers=args.workers,
        device=args.device,
    )
    if result["paths"]:
        write_npz(args.out, result)
        log.info("wrote %s: %d videos", args.out, len(result["paths"]))
    if result["failed"]:
        skipped = "; ".join(result["failed_reasons"])
        written = f"the other {len(result['paths'])} are in {args.out}" if result["paths"] else ""
        raise UserError(
            f"{len(result['failed'])} of {len(args.videos)} videos could not be decoded and "
            f"were skipped ({skipped}){'; ' + written if written else '; nothing was written'}"
        )
    return 0
