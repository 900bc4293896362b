"""The ``sstl`` command line as a user meets it: ``--version``, and a ``--help`` per command that
says what it does, what it reads and writes, and shows one example, in words for its user."""

from __future__ import annotations

import importlib
import re
import subprocess
import sys

import pytest

from sstl import __version__
from sstl.cli import COMMANDS, main

# Words of the code, not of its user: class names, reST markup, module paths, notes' sections.
JARGON = [
    r"\b[A-Z][A-Za-z]*(Config|Job)\b",  # PretrainConfig, RetrieveJob
    r"\bdataclass",
    r"``",
    r":(func|class|mod):",
    r"\bsstl\.[a-z_]+\.[a-z_]+",  # sstl.models.weights
    r"METHOD|§",
    r"\btests/",
]


def help_text(command: str, capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0, f"sstl {command} --help exited {exit_.value.code}"
    return capsys.readouterr().out


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_help_is_written_for_a_user(command, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    text = help_text(command, capsys)
    assert text.startswith(f"usage: sstl {command} ")
    description = text.split("\n\n")[1]
    assert len(description) > 80, f"sstl {command}: the help says too little:\n{text}"
    # one runnable example, after an "example:" heading
    example = text.split("\nexample:\n", 1)
    assert len(example) == 2, f"sstl {command} --help has no example:\n{text}"
    assert example[1].lstrip().startswith(f"sstl {command} "), example[1]
    for pattern in JARGON:
        found = re.search(pattern, text)
        assert not found, f"sstl {command} --help says {found.group(0)!r}:\n{text}"
    # the module's developer docstring is not the help
    module = importlib.import_module(COMMANDS[command][0].split(":")[0])
    first = (module.__doc__ or "").strip().splitlines()[0]
    assert first not in text, f"sstl {command} --help prints its module docstring"
    # every option says what it is
    options = text.split("\noptions:\n", 1)[1].split("\nexample:\n")[0]
    bare = re.findall(r"^  (--[\w-]+(?: [A-Z_]+)?)\n(?!   )", options, re.MULTILINE)
    assert not bare, f"sstl {command}: options without help: {bare}"


def test_the_command_list_and_version(capsys):
    assert main(["--help"]) == 0
    text = capsys.readouterr().out
    for command in COMMANDS:
        assert f"\n  {command} " in text
    assert "example:" in text
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"sstl {__version__}"
    assert main([]) == 2  # no command: the list, and a usage error


def test_version_and_help_of_the_installed_entry_point_skip_torch():
    """``sstl --version`` and ``sstl cluster --help`` through the real entry point, without
    importing torch (a cluster login node answers at once)."""
    code = (
        "import sys; from sstl.cli import main\n"
        "for argv in (['--version'], ['cluster', '--help'], ['dvc', '--help']):\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"sstl {__version__}\n")
    assert "usage: sstl dvc" in proc.stdout
