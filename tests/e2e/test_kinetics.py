"""A local Kinetics-400 copy in each supported layout, through Snakemake: fetch (matched by
YouTube id), extraction (one shard left empty), the manifest and a few pretraining steps, with the
local setting exactly as ``config/paper.yaml`` shows it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest
import yaml

from .conftest import REPO, snakemake, workspace_copy

pytestmark = pytest.mark.slow

SHARDS = {"flat": 6, "spaces": 1, "underscores": 1}  # flat: 5 videos, 6 shards, one empty


def paper_setting() -> dict:
    """The commented local Kinetics-400 setting of config/paper.yaml, uncommented."""
    text = (REPO / "config/paper.yaml").read_text()
    block = re.search(r"# BEGIN local kinetics400\n(.*?)\n\s*# END local kinetics400", text, re.S)
    assert block, "config/paper.yaml lost its local kinetics400 block"
    return yaml.safe_load(re.sub(r"(?m)^\s*# ?", "", block.group(1)))


def test_the_documented_setting_is_the_tested_one():
    setting = paper_setting()
    assert setting["source"] == "local" and set(setting) == {"source", "local_path", "annotations"}
    readme = (REPO / "README.md").read_text()
    blocks = [yaml.safe_load(b) for b in re.findall(r"```yaml\n(.*?)```", readme, re.S)]
    shown = [b["datasets"]["kinetics400"] for b in blocks if "kinetics400" in b.get("datasets", {})]
    assert shown == [setting]


@pytest.mark.parametrize("layout", ["flat", "spaces", "underscores"])
def test_kinetics_copy_extracts_and_pretrains(tmp_path, kinetics_copies, layout):
    copy, notes = kinetics_copies[layout]
    ws = workspace_copy(tmp_path / "ws")
    cfg = yaml.safe_load((ws / "config/tiny.yaml").read_text())
    setting = paper_setting()
    setting.update(local_path=str(copy), annotations=str(notes))  # the cluster paths -> ours
    cfg["datasets"]["kinetics400"] = setting
    cfg["extract"]["shards"] = n = SHARDS[layout]
    cfg["pretrain"]["dataset"] = "kinetics400"
    cfg["pretrain"]["optim"].update(epochs=3, batch_size=4, ref_batch=4)  # 4 train videos
    (ws / "config/k400.yaml").write_text(yaml.safe_dump(cfg))
    snakemake(ws, "runs/pretrain/sstl/weights.pt", "--configfile", "config/k400.yaml")

    source = json.loads((ws / "data/kinetics400/source/source.json").read_text())
    assert source["counts"]["train"] == {"listed": 4, "present": 4, "missing": 0}
    assert source["unlisted"] == 0
    m = pd.read_csv(ws / "data/kinetics400/manifest.csv", keep_default_na=False)
    assert set(m["status"]) == {"ok"} and len(m) == 5
    # the same ids whatever the layout: label (spaces, apostrophe, brackets) / id_start_end
    assert "massaging person's head/-abc_DEF-12_000005_000015" in set(m["id"])
    assert "passing American football (in game)/x_Y-z012345_000000_000010" in set(m["id"])
    assert len(set(zip(m["height"], m["width"], strict=True))) >= 4  # mixed frame sizes
    if n > len(m):  # a shard without a video is an empty, valid output
        empty = pd.read_csv(ws / f"data/kinetics400/shards/{n - 1}-of-{n}.csv")
        assert empty.empty and (ws / f"data/kinetics400/store/{n - 1}-of-{n}").is_dir()
    steps = (ws / "state/pretrain/sstl/metrics.jsonl").read_text().splitlines()
    assert [json.loads(s)["step"] for s in steps] == [1, 2, 3]
    assert (ws / "runs/pretrain/sstl/weights.pt").stat().st_size > 0
    assert not Path(ws / "logs/pretrain/sstl.log").read_text().count("Traceback")
