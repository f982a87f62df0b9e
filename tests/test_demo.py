"""`bulk-contacts demo`: the main job on a fresh machine, as the README's first command runs it."""

from __future__ import annotations

import json

import openpyxl
import pandas as pd

from .conftest import run_in_process


def test_the_demo_runs_the_whole_pipeline_and_says_where_everything_is(tmp_path) -> None:
    """Also with the user's own CHEKT_* settings in the environment: the demo's steps get the
    sandbox's settings passed to them, and never read those (`chekt.invalid` never resolves).
    In this process (the console script's own start is tests/test_trial.py's and test_help's)."""
    env = {
        "CHEKT_API_URL": "https://chekt.invalid",
        "CHEKT_CLIENT_ID": "real-client",
        "CHEKT_CLIENT_SECRET": "Real-Secret-Of-The-User",
        "CHEKT_DEALER_ID": "777",
        "CHEKT_API_KEY": "real-api-key",
    }
    result = run_in_process("demo", "--no-progress", env=env)  # in tmp_path (own_folder)
    assert result.returncode == 0, result.stdout + result.stderr
    out = tmp_path / "demo-output"
    for name in (
        "plan.html",
        "plan.xlsx",
        "plan.json",
        "apply/results.csv",
        "apply/journal.jsonl",
        "contacts-after.xlsx",
        "sample_data/roster.xlsx",
    ):
        assert (out / name).exists(), name
        assert name in result.stdout
    assert "127.0.0.1" in result.stdout and "Demo finished in" in result.stdout
    assert "bulk-contacts serve" in result.stdout
    assert "\\x0a" not in result.stdout  # a newline of its own is not escaped
    summary = json.loads((out / "plan.json").read_text())["summary"]
    assert summary == {
        "create": 46,
        "update": 2,
        "delete": 2,
        "unchanged": 1,
        "conflict": 1,
        "invalid": 0,
    }
    results = pd.read_csv(out / "apply" / "results.csv", dtype=str, keep_default_na=False)
    assert len(results) == 50 and set(results["status"]) == {"ok"}
    exported = openpyxl.load_workbook(out / "contacts-after.xlsx")["Contacts"]
    assert exported.max_row - 1 == 9 + 46 - 2  # the seed, plus creates, less deletes
    assert "sandbox-secret" not in (out / "apply" / "journal.jsonl").read_text()
    assert "chekt.invalid" not in result.stdout + result.stderr
