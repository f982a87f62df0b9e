"""The README tells the truth about the command line, and CI runs the README's test command."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest

from bulk_contacts.cli import main

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
COMMANDS = sorted(main.commands)


def opening_commands() -> list[str]:
    """The code blocks before the README's first section."""
    head = README.split("\n## ", 1)[0]
    return [block.strip() for block in re.findall(r"```sh\n(.*?)```", head, flags=re.S)]


def test_the_readme_starts_with_exactly_two_one_line_commands() -> None:
    commands = opening_commands()
    assert len(commands) == 2
    assert all("\n" not in command for command in commands)
    assert commands[0].endswith("pip install . && bulk-contacts demo")
    assert commands[1].endswith("python -m pytest")


def test_ci_runs_the_readmes_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert opening_commands()[1] in ci


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_has_help_and_a_readme_entry(name: str) -> None:
    command = main.commands[name]
    assert command.help and command.help.strip()
    assert f"### `bulk-contacts {name}" in README


@pytest.mark.parametrize("name", COMMANDS)
def test_every_option_has_help_and_appears_in_the_readme(name: str) -> None:
    for parameter in main.commands[name].params:
        if not isinstance(parameter, click.Option):
            continue
        assert parameter.help, f"{name} {parameter.opts} has no help text"
        long_form = max(parameter.opts, key=len)
        assert f"`{long_form}`" in README, f"{name} {long_form} is not in the README"


def test_every_benchmark_script_is_in_the_readme() -> None:
    for script in (ROOT / "benchmarks").glob("*_bench.py"):
        assert f"benchmarks/{script.name}" in README, script.name


def test_the_sample_data_is_what_the_package_writes(tmp_path) -> None:
    from bulk_contacts.samples import write_samples

    for name, path in write_samples(tmp_path).items():
        assert path.read_bytes() == (ROOT / "sample_data" / name).read_bytes(), name
