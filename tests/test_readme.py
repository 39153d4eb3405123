"""README promises: the two set-up commands come first, and CI runs exactly those."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SETUP = ['pip install -e ".[dev]"', "python -m pytest"]


def code_blocks(text: str) -> list[list[str]]:
    return [[ln.strip() for ln in block.strip().splitlines()]
            for block in re.findall(r"```(?:bash|sh)?\n(.*?)```", text, re.S)]


def test_readme_starts_with_the_two_setup_commands():
    blocks = code_blocks((ROOT / "README.md").read_text())
    assert blocks and blocks[0] == SETUP


def test_ci_runs_the_readme_commands():
    ci = (ROOT / ".ci" / "run").read_text()
    assert "set -euo pipefail" in ci
    for command in SETUP:
        assert command in ci, f".ci/run does not run README's `{command}`"


@pytest.mark.parametrize("snippet", ["speechvq config model.encoder.chanels=256"])
def test_readme_error_example_is_what_the_cli_prints(snippet, capsys):
    from speechvq import cli

    readme = (ROOT / "README.md").read_text()
    shown = readme.split(f"$ {snippet}\n", 1)[1].splitlines()[0].strip()
    assert cli.main(snippet.split()[1:]) == 2
    assert capsys.readouterr().err.strip() == shown
