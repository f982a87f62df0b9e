"""`--help`: commands in the order of the work, examples and environment variables on every
command, and shell completion (click's) produced by the installed command."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from bulk_contacts.cli import WORKFLOW, main

ROOT = Path(__file__).parent.parent
COMMANDS = sorted(main.commands)
CONNECTING = ("plan", "apply", "export", "rollback", "serve")


def help_of(*args: str) -> str:
    result = CliRunner().invoke(main, [*args, "--help"], terminal_width=100)
    assert result.exit_code == 0, result.output
    return result.output


def variables_read_by(*modules: str) -> set[str]:
    """The CHEKT_* names the library reads from an environment (`env.get("CHEKT_...")`)."""
    found: set[str] = set()
    for module in modules:
        source = (ROOT / "bulk_contacts" / module).read_text(encoding="utf-8")
        found |= set(re.findall(r'env\.get\("(CHEKT_[A-Z_]+)"', source))
    return found


def test_the_commands_are_listed_in_the_order_of_the_work() -> None:
    listed = re.findall(r"^  ([a-z]+)  ", help_of().split("Commands:")[1], re.MULTILINE)
    expected = [name for name in WORKFLOW if name in main.commands]
    assert listed[: len(expected)] == expected
    assert expected[:6] == ["template", "validate", "plan", "apply", "export", "rollback"]
    assert set(listed) == set(main.commands)  # any command not in the list comes last


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_has_examples_and_its_environment(name: str) -> None:
    text = help_of(name)
    examples = text.split("Examples:")[1].split("Environment:")[0]
    lines = [line for line in examples.splitlines() if line.strip().startswith("bulk-contacts")]
    assert 2 <= len(lines) <= 3, text
    assert all(line.split()[1] == name for line in lines)
    assert "Environment:" in text


def all_commands() -> list[tuple[str, ...]]:
    found = []
    for name, command in sorted(main.commands.items()):
        found.append((name,))
        found += [(name, sub) for sub in sorted(getattr(command, "commands", {}))]
    return found


@pytest.mark.parametrize("path", all_commands(), ids=" ".join)
def test_every_flag_a_variable_stands_for_is_a_flag_of_that_command(path: tuple[str, ...]) -> None:
    command = main
    for name in path:
        command = command.commands[name]  # type: ignore[attr-defined]  # a group's commands
    flags = {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}
    environment = help_of(*path).partition("Environment:")[2]
    named = set(re.findall(r"\((--[a-z][a-z-]+)\)", environment))  # "CHEKT_X  ... (--flag)"
    assert named <= flags, environment


@pytest.mark.parametrize("name", CONNECTING)
def test_the_commands_that_connect_name_every_variable_they_read(name: str) -> None:
    text = help_of(name)
    read = variables_read_by("settings.py", "credentials.py")
    assert len(read) >= 8
    if name == "rollback":  # the journal names the dealers
        read.discard("CHEKT_DEALER_ID")
    missing = sorted(v for v in read if v not in text)
    assert not missing, text
    assert "HTTPS_PROXY" in text  # httpx reads the proxy settings


def test_the_offline_commands_say_they_read_no_variable() -> None:
    for name in ("template", "validate"):
        assert "none: nothing is sent anywhere" in help_of(name)
    assert "SANDBOX_CLIENT_SECRET" in help_of("sandbox")


def console_script() -> str:
    script = Path(sys.executable).parent / (
        "bulk-contacts.exe" if os.name == "nt" else "bulk-contacts"
    )
    assert script.exists(), f"{script}: install the package (pip install -e .)"
    return str(script)


@pytest.mark.parametrize(
    ("shell", "marker"),
    [("bash", "complete -o nosort -F"), ("zsh", "#compdef bulk-contacts"), ("fish", "complete")],
)
def test_shell_completion_scripts_are_produced(shell: str, marker: str) -> None:
    result = subprocess.run(
        [console_script()],
        env={**os.environ, "_BULK_CONTACTS_COMPLETE": f"{shell}_source"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert marker in result.stdout and "_BULK_CONTACTS_COMPLETE" in result.stdout


def test_completion_completes_commands_and_options() -> None:
    def complete(words: str) -> list[str]:
        result = subprocess.run(
            [console_script()],
            env={
                **os.environ,
                "_BULK_CONTACTS_COMPLETE": "bash_complete",
                "COMP_WORDS": words,
                "COMP_CWORD": str(len(words.split()) - (0 if words.endswith(" ") else 1)),
            },
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        return [line.split(",", 1)[1] for line in result.stdout.splitlines()]

    assert complete("bulk-contacts ro") == ["rollback"]
    assert "--skip-invalid" in complete("bulk-contacts plan --sk")


def test_the_readme_documents_completion() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for shell in ("bash", "zsh", "fish"):
        assert f"_BULK_CONTACTS_COMPLETE={shell}_source bulk-contacts" in readme
