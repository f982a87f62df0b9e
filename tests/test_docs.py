"""The README tells the truth about the command line, and CI runs the README's test command."""

from __future__ import annotations

import re
import tokenize
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


# generated and executed docs


def test_the_option_tables_are_generated_from_the_commands(monkeypatch) -> None:
    """The command reference's tables are cog's output over the commands' declarations
    (docs/cli_tables.py): `cog -r README.md` rewrites them; here they must be current."""
    from cogapp import Cog

    monkeypatch.chdir(ROOT)
    status = Cog().main(["cog", "--check", "-I", "docs", "README.md"])
    assert status == 0, "the README's option tables are stale: run `cog -r README.md`"


def test_the_sandbox_section_lists_every_sandbox_option() -> None:
    section = README.split("## The sandbox", 1)[1].split("### Seed file", 1)[0]
    listed = set(re.findall(r"`(--[a-z-]+)", section))
    options = {
        max(p.opts, key=len)
        for p in main.commands["sandbox"].params
        if isinstance(p, click.Option) and p.name != "help"
    }
    assert listed == options


def python_examples() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README, flags=re.S)


def test_the_library_examples_use_the_public_api() -> None:
    import bulk_contacts

    examples = python_examples()
    library = [e for e in examples if "from bulk_contacts import" in e]
    assert len(library) >= 2
    for example in library:
        for names in re.findall(r"from bulk_contacts import \(?([^)]*?)\)?\n", example, re.S):
            for name in re.findall(r"\w+", names):
                assert name in bulk_contacts.__all__, name
    assert not any("from bulk_contacts." in e for e in library)


def test_the_public_api_resolves_and_is_typed() -> None:
    import ast

    import bulk_contacts

    for name in bulk_contacts.__all__:
        assert getattr(bulk_contacts, name) is not None, name
    tree = ast.parse((ROOT / "bulk_contacts" / "__init__.py").read_text(encoding="utf-8"))
    typed = {
        alias.asname or alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 1
        for alias in node.names
    }
    assert typed == set(bulk_contacts.__all__) - {"__version__"}
    assert (ROOT / "bulk_contacts" / "py.typed").exists()


def test_the_readmes_python_examples_run(start_sandbox, tmp_path, monkeypatch, capsys) -> None:
    """Each example, as written, against a sandbox seeded with the sample data (the settings in
    the environment, as the README says; the roster is the sample one)."""
    import shutil

    from bulk_contacts import retries

    server = start_sandbox(seed=ROOT / "sample_data" / "sandbox-seed.json")
    for name, value in {
        "CHEKT_API_URL": server.url,
        "CHEKT_CLIENT_ID": "sandbox-client",
        "CHEKT_CLIENT_SECRET": "sandbox-secret",
        "CHEKT_DEALER_ID": "12345",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    shutil.copy(ROOT / "sample_data" / "roster.xlsx", tmp_path / "roster.xlsx")
    retries.set_testing(True)
    try:
        for example in python_examples():
            exec(compile(example, "README.md", "exec"), {})
    finally:
        retries.set_testing(False)
    printed = capsys.readouterr().out
    assert "{'create': 46, 'update': 2, 'delete': 1" in printed  # the sample roster, no --prune
    assert "{'ok': 49, 'failed': 0" in printed  # applied
    assert "http://127.0.0.1:" in printed  # the sandbox example's URL


def test_every_type_ignore_says_why_on_its_line() -> None:
    """A mypy ignore comment names its error code and says why, on the same line."""
    folders = ("bulk_contacts", "tests", "docs", "benchmarks")
    for path in (path for folder in folders for path in (ROOT / folder).rglob("*.py")):
        with path.open("rb") as source:
            comments = [
                token
                for token in tokenize.tokenize(source.readline)
                if token.type == tokenize.COMMENT and "type: ignore" in token.string
            ]
        for token in comments:
            where = f"{path}:{token.start[0]}"
            assert re.fullmatch(r"# type: ignore\[[a-z-, ]+\]  # \S.*", token.string), where
