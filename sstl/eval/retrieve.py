"""``sstl retrieve``: nearest-neighbour clip retrieval with a pretrained model (paper Sec 4.4).

    sstl retrieve --cfg JSON --manifest CSV --store DIR --weights PRETRAIN_WEIGHTS|scratch \
        --out metrics.json [--features-out features.npz]

No fine-tuning: the pretrained model (or, for ``scratch``, a randomly initialised one built from
the ``model`` section, seeded with ``seed``) embeds ``clips`` (10) clips of ``clip_len`` (16)
consecutive frames uniformly spaced over every video, centre cropped. Features come from
``layer``: ``projection`` (the last fully-connected layer, default) or ``backbone`` (pooled).
Every TEST clip queries ALL TRAIN clips (labels repeated per clip) by cosine similarity and
top-k accuracy is reported for ``ks`` (:func:`sstl.eval.retrieval.topk_accuracy`). Switches for
the peers' protocols: ``protocol: video_mean`` (VCOP: a video's clips averaged) and
``center: true`` (CoCLR: gallery mean subtracted, then L2-normalised).

``--cfg`` is a :class:`~sstl.config.RetrieveJob`: ``{"retrieval": {...}, "model": {...} (scratch
only), "seed": int}``.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sstl.config import RetrievalConfig, RetrieveJob, load_section, to_dict
from sstl.data.clips import load_manifest
from sstl.eval.knn import faiss_module
from sstl.eval.retrieval import center_normalize, l2_normalize, topk_accuracy, video_mean
from sstl.eval.videos import split_rows, video_loader
from sstl.files import write_json
from sstl.models.features import extract_features
from sstl.models.weights import build_encoder, require_init
from sstl.runtime import (
    command_parser,
    git_info,
    log_startup,
    parse_cfg,
    resolve_device,
    setup_logging,
)

log = logging.getLogger(__name__)


def embed(
    model: torch.nn.Module, manifest: Any, store: Path, split: str, cfg: RetrievalConfig, device
) -> tuple[torch.Tensor, torch.Tensor]:
    """``split``'s videos (status ok) -> features ``[N, K, D]`` and labels ``[N]``."""
    loader = video_loader(
        split_rows(manifest, split),
        store,
        cfg.clip_len,
        cfg.clips,
        cfg.batch_size,
        cfg.workers,
        device,
    )
    feats, labels, _ = extract_features(model, loader, cfg.layer, device, cfg.crop_size)
    return feats, labels


def retrieval_sets(
    test: torch.Tensor,
    test_labels: torch.Tensor,
    train: torch.Tensor,
    train_labels: torch.Tensor,
    cfg: RetrievalConfig,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Queries and gallery under the configured protocol (pure).

    ``test [Nq, K, D]``, ``train [Ng, K, D]`` -> ``(query [Q, D], query_labels [Q], gallery
    [G, D], gallery_labels [G])``: every clip with its video's label (``clip``: Q = Nq * K), or
    one mean feature per video (``video_mean``: Q = Nq); unit rows, centred first with ``center``.
    """
    if cfg.protocol == "video_mean":
        query, gallery = video_mean(test), video_mean(train)
        ql, gl = test_labels.numpy(), train_labels.numpy()
    else:
        k = test.shape[1]
        query, gallery = test.reshape(-1, test.shape[2]).numpy(), train.reshape(-1, train.shape[2])
        gallery = gallery.numpy()
        ql = test_labels.repeat_interleave(k).numpy()  # clip i*K + j belongs to video i
        gl = train_labels.repeat_interleave(train.shape[1]).numpy()
    if cfg.center:
        query, gallery = center_normalize(query, gallery)
    else:
        query, gallery = l2_normalize(query), l2_normalize(gallery)
    return query, ql, gallery, gl


def cli(argv: list[str] | None = None) -> int:
    parser = command_parser(
        "sstl retrieve",
        "Nearest-neighbour clip retrieval with a pretrained encoder, no fine-tuning (paper\n"
        "Sec 4.4): clips uniformly spaced over every video are embedded, each test clip queries\n"
        "all train clips by cosine similarity, and a query counts as a hit at k when its class\n"
        "is among the classes of its k nearest train clips.\n\n"
        "Writes OUT (top-k accuracies, the protocol and provenance, JSON) and, when asked, the\n"
        "features (.npz).",
        "sstl retrieve --manifest data/ucf101/manifest.csv --store data/ucf101/store\n"
        "--weights runs/pretrain/mine/weights.pt --out retrieval.json\n"
        '--cfg \'{"retrieval": {"ks": [1, 5, 10]}}\'',
    )
    parser.add_argument(
        "--cfg",
        help='settings: {"retrieval": the retrieval section of a config file, "model": the '
        "pretrain.model section (for 'scratch'), \"seed\": N}, as inline JSON or @file.yaml; "
        "keys left out keep their defaults",
    )
    parser.add_argument("--manifest", type=Path, required=True, help="the dataset's manifest.csv")
    parser.add_argument("--store", type=Path, required=True, help="the dataset's frame store")
    parser.add_argument(
        "--weights", required=True, help="a pretrained weights file, or 'scratch' (random init)"
    )
    parser.add_argument("--out", type=Path, required=True, help="the metrics file (.json)")
    parser.add_argument("--features-out", type=Path, help="also save the features (.npz)")
    args = parser.parse_args(argv)
    setup_logging()
    job = load_section(RetrieveJob, parse_cfg(args.cfg))
    require_init(args.weights)
    cfg = job.retrieval
    if cfg.backend == "faiss":
        faiss_module()  # refuse now, not after embedding every video
    log_startup("retrieve", {**to_dict(job), "weights": args.weights})
    device = resolve_device(cfg.device)
    model, weights_info = build_encoder(args.weights, job.model, job.seed)
    model = model.to(device)

    manifest = load_manifest(args.manifest)
    test, test_labels = embed(model, manifest, args.store, "test", cfg, device)
    train, train_labels = embed(model, manifest, args.store, "train", cfg, device)
    query, ql, gallery, gl = retrieval_sets(test, test_labels, train, train_labels, cfg)
    log.info(
        "retrieval: %d queries x %d gallery items x %d-d (%s, %s)",
        len(query),
        len(gallery),
        query.shape[1],
        cfg.backend,
        cfg.protocol,
    )
    acc = topk_accuracy(query, ql, gallery, gl, ks=cfg.ks, backend=cfg.backend)

    metrics: dict[str, Any] = {f"top{k}": v for k, v in acc.items()}
    metrics |= {
        "ks": list(cfg.ks),
        "protocol": {
            "layer": cfg.layer,
            "clips": cfg.clips,
            "clip_len": cfg.clip_len,
            "protocol": cfg.protocol,
            "center": cfg.center,
            "backend": cfg.backend,
            "crop_size": cfg.crop_size,
        },
        "num_queries": len(query),
        "num_gallery": len(gallery),
        "weights": weights_info,
        "model": dataclasses.asdict(model.cfg),
        "git": git_info(),
    }
    write_json(args.out, metrics)
    if args.features_out is not None:
        args.features_out.parent.mkdir(parents=True, exist_ok=True)
        np.savez(
            args.features_out,
            test=test.numpy(),
            test_labels=test_labels.numpy(),
            train=train.numpy(),
            train_labels=train_labels.numpy(),
        )
    log.info("retrieval %s", " ".join(f"top{k} {v:.2f}" for k, v in acc.items()))
    return 0
