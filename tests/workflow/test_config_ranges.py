"""Each value's range is checked in one place: the typed sections in ``sstl/config/``.

The schema keeps the shape (keys, types, names); the dataclasses own what values are allowed, so
``sstl.pipeline.validate`` rejects each out-of-range value below, before any job, naming the key.
"""

from __future__ import annotations

from typing import Any

import pytest

from sstl import pipeline as P

# dotted key -> a value outside its range (every range the schema used to hold, and more)
OUT_OF_RANGE: dict[str, Any] = {
    "pretrain.model.arch": "resnet50",
    "pretrain.model.width": 2,
    "pretrain.model.proj_hidden": 0,
    "pretrain.model.proj_dim": 0,
    "pretrain.model.stem_pool": "both",
    "pretrain.temporal.clip_len": 0,
    "pretrain.temporal.buffer": -1,
    "pretrain.temporal.n_drop": -1,
    "pretrain.temporal.rate_range": [0, 2],
    "pretrain.spatial.crop_size": 4,
    "pretrain.spatial.scale": [0.5, 0.2],
    "pretrain.spatial.ratio": [2.0, 0.5],
    "pretrain.spatial.jitter_prob": 1.5,
    "pretrain.spatial.brightness": -0.1,
    "pretrain.spatial.contrast": -0.1,
    "pretrain.spatial.saturation": -0.1,
    "pretrain.spatial.hue": 0.7,
    "pretrain.spatial.grayscale_prob": -0.2,
    "pretrain.spatial.blur_prob": 2,
    "pretrain.spatial.blur_sigma": [0, 2],
    "pretrain.spatial.flip_prob": 1.01,
    "pretrain.memory.slots": 0,
    "pretrain.memory.momentum": 1.5,
    "pretrain.memory.attenuation": 1.0,
    "pretrain.memory.rule": "textual",
    "pretrain.memory.negatives": -1,
    "pretrain.loss.temperature": 0,
    "pretrain.loss.w_ctr": -1,
    "pretrain.loss.w_spd": -0.5,
    "pretrain.loss.w_video": -2,
    "pretrain.optim.epochs": 0,
    "pretrain.optim.batch_size": 0,
    "pretrain.optim.lr": 0,
    "pretrain.optim.ref_batch": 0,
    "pretrain.optim.momentum": 1.0,
    "pretrain.optim.weight_decay": -1e-4,
    "pretrain.optim.warmup_epochs": -1,
    "pretrain.optim.schedule": "linear",
    "pretrain.optim.gamma": 0,
    "pretrain.optim.milestones": [0],
    "pretrain.run.device": "tpu",
    "pretrain.run.workers": -1,
    "pretrain.run.save_every": 0,
    "pretrain.run.log_every": 0,
    "pretrain.run.max_steps": -1,
    "pretrain.split": "test",
    "finetune.clip_len": 0,
    "finetune.dropout": 1.0,
    "finetune.val_every": 0,
    "finetune.optim.lr": -0.1,
    "evaluate.clips": 0,
    "evaluate.clip_len": 0,
    "evaluate.crop_size": 4,
    "evaluate.batch_size": 0,
    "evaluate.workers": -1,
    "evaluate.device": "gpu",
    "retrieval.clips": 0,
    "retrieval.clip_len": 0,
    "retrieval.ks": [],
    "retrieval.layer": "head",
    "retrieval.protocol": "video",
    "retrieval.backend": "annoy",
    "retrieval.crop_size": 4,
    "retrieval.batch_size": 0,
    "retrieval.workers": -1,
    "retrieval.device": "gpu",
    "analysis.layer": "head",
    "analysis.videos": 1,
    "analysis.strengths": [-4],
    "analysis.clips_per_video": 1,
    "analysis.clip_len": 0,
    "analysis.crop_size": 4,
    "analysis.batch_size": 0,
    "analysis.workers": -1,
    "analysis.device": "gpu",
    "store.short_side": 8,
    "store.codec": "png",
    "store.gop": 0,
    "store.crf": 52,
    "store.jpeg_quality": 101,
    "synthetic.classes": 1,
    "synthetic.train_per_class": 0,
    "synthetic.test_per_class": 0,
    "synthetic.frames": 8,
    "synthetic.size": 8,
    "synthetic.fps": 0,
    "datasets.synthetic.split": 4,
    "datasets.synthetic.min_present": 1.5,
    "datasets.synthetic.max_unpacked_gb": 0,
    "datasets.synthetic.max_unpack_ratio": 0.5,
}


@pytest.mark.parametrize("key", list(OUT_OF_RANGE))
def test_an_out_of_range_value_is_refused_before_any_job_naming_the_key(configs, with_key, key):
    value = OUT_OF_RANGE[key]
    with pytest.raises(P.PipelineConfigError) as err:
        P.validate(with_key(configs["config"], key, value), check_paths=False)
    message = str(err.value)
    assert key.rsplit(".", 1)[-1] in message and "not allowed" in message, message


def _ranges(node: Any, where: str) -> list[str]:
    """Paths of the range keywords (minimum, enum, ...) under a schema node."""
    found = []
    if isinstance(node, dict):
        for word in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "enum"):
            if word in node:
                found.append(f"{where}: {word}")
        for k, v in node.items():
            found += _ranges(v, f"{where}.{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            found += _ranges(v, f"{where}[{i}]")
    return found


def test_the_schema_holds_no_range_of_a_typed_section():
    """A second copy of a range drifts (the schema said n_drop >= 0, the dataclass n_drop <=
    buffer); ranges of sections without a dataclass (resources, extract, run) stay in it."""
    import yaml

    schema = yaml.safe_load(P.SCHEMA.read_text())
    typed = ["model", "temporal", "spatial", "memory", "loss", "optim", "run", "pretrain",
             "finetune", "retrieval", "analysis", "pair"]  # fmt: skip
    found = [r for name in typed for r in _ranges(schema["$defs"][name], f"$defs.{name}")]
    for name in ("datasets", "synthetic", "store", "evaluate"):
        found += _ranges(schema["properties"][name], name)
    assert not found, found
