"""Typed configuration, one dataclass per concern.

The workflow validates ``config/*.yaml`` against ``workflow/schemas/config.schema.yaml`` before any
job runs; each CLI command then builds the dataclasses it needs from the JSON it is handed with
:func:`load_section`, which rejects unknown keys and bad values with a message naming the key, the
value and what is allowed. Value checks that span fields live in ``__post_init__``.

Modules: :mod:`~sstl.config.loader` (``load_section``, ``to_dict``, ``ConfigError``),
:mod:`~sstl.config.data` (dataset, synthetic, store), :mod:`~sstl.config.training` (the parts and
the pretrain / finetune stages), :mod:`~sstl.config.evaluation` (evaluate, retrieval, analysis),
:mod:`~sstl.config.jobs` (the retrieve and analyse commands' ``--cfg``).
Import from ``sstl.config``: the split is for reading, not a second API.
"""

from sstl.config.data import DatasetConfig, StoreConfig, SyntheticConfig
from sstl.config.evaluation import AnalysisConfig, EvalConfig, RetrievalConfig
from sstl.config.jobs import SCRATCH, AnalyseJob, RetrieveJob
from sstl.config.loader import ConfigError, load_section, to_dict
from sstl.config.training import (
    FinetuneConfig,
    LossConfig,
    MemoryConfig,
    ModelConfig,
    OptimConfig,
    PretrainConfig,
    RunConfig,
    SpatialConfig,
    TemporalConfig,
)

__all__ = [
    "SCRATCH",
    "AnalyseJob",
    "AnalysisConfig",
    "ConfigError",
    "DatasetConfig",
    "EvalConfig",
    "FinetuneConfig",
    "LossConfig",
    "MemoryConfig",
    "ModelConfig",
    "OptimConfig",
    "PretrainConfig",
    "RetrievalConfig",
    "RetrieveJob",
    "RunConfig",
    "SpatialConfig",
    "StoreConfig",
    "SyntheticConfig",
    "TemporalConfig",
    "load_section",
    "to_dict",
]
