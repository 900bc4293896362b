"""The job configs of the commands that combine several sections: what ``sstl retrieve`` and
``sstl analyse`` take as ``--cfg``, and what :func:`sstl.pipeline.stage_config` builds for them.

One definition serves both sides: the workflow builds the mapping from ``config/*.yaml`` and the
command reads it back with :func:`~sstl.config.loader.load_section`, so a key one side writes and
the other does not know is an error at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sstl.config.evaluation import AnalysisConfig, RetrievalConfig
from sstl.config.training import ModelConfig, TemporalConfig

SCRATCH = "scratch"  # an experiment's init without pretraining: a seeded random backbone


@dataclass
class RetrieveJob:
    """``sstl retrieve``: the protocol, and the encoder built for ``scratch`` (random init)."""

    retrieval: RetrievalConfig = field(default_factory=RetrievalConfig)
    model: ModelConfig = field(default_factory=ModelConfig)  # used only for scratch
    seed: int = 0  # scratch's initialisation


@dataclass
class AnalyseJob:
    """``sstl analyse``: the Figure 1/2 probe, the encoder for scratch, and the playback-rate
    range of the probe's temporal augmentation (the pretraining's ``temporal.rate_range``)."""

    analysis: AnalysisConfig = field(default_factory=AnalysisConfig)
    model: ModelConfig = field(default_factory=ModelConfig)  # used only for scratch
    rate_range: tuple[float, float] = (1.0, 1.25)
    seed: int = 0  # scratch's initialisation

    def __post_init__(self) -> None:
        self.rate_range = tuple(self.rate_range)
        TemporalConfig(rate_range=self.rate_range)  # the one place that range is checked
