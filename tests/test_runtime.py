"""Process-level helpers: ``--cfg`` parsing."""

from __future__ import annotations

from pathlib import Path

import pytest

from sstl.config import ConfigError
from sstl.runtime import parse_cfg

REPO = Path(__file__).resolve().parent.parent


# --- --cfg ------------------------------------------------------------------------------------


def test_cfg_file_json_is_parsed_as_json(tmp_path):
    path = tmp_path / "cfg.json"
    path.write_text('{"optim": {"weight_decay": 1e-05, "lr": 2E-1}, "name": "yes", "n": 3}')
    cfg = parse_cfg(f"@{path}")
    assert cfg["optim"] == {"weight_decay": 1e-05, "lr": 0.2}
    assert isinstance(cfg["optim"]["weight_decay"], float)
    assert cfg["name"] == "yes" and cfg["n"] == 3  # YAML 1.1 would make "yes" True


def test_cfg_file_yaml_and_inline_json(tmp_path):
    path = tmp_path / "cfg.yaml"
    path.write_text("optim:\n  lr: 0.5  # comment\n")
    assert parse_cfg(f"@{path}") == {"optim": {"lr": 0.5}}
    assert parse_cfg('{"a": 1e-05}') == {"a": 1e-05}
    assert parse_cfg(None) == {}


@pytest.mark.parametrize(
    ("name", "body", "words"),
    [
        ("bad.json", "{'a': 1}", "not valid json"),
        ("list.json", "[1, 2]", "must be a mapping"),
        ("absent.json", None, "cannot read"),
        ("bad.yaml", "a: [1,", "not valid yaml"),
    ],
)
def test_cfg_file_errors_name_the_file(tmp_path, name, body, words):
    path = tmp_path / name
    if body is not None:
        path.write_text(body)
    with pytest.raises(ConfigError) as err:
        parse_cfg(f"@{path}")
    assert words in str(err.value)
    if "mapping" not in words:
        assert name in str(err.value)
