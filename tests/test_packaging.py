"""The project's metadata builds with the build backend pip fetches (the newest setuptools that
`[build-system] requires` allows) without a deprecation warning: setuptools turns its warnings
about `pyproject.toml` into errors on announced dates (the `project.license` table from
2027-02-18). The backend's own PEP 517 hook runs on a copy of the project, warnings as errors."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))

BUILD_METADATA = """
import sys
from setuptools import build_meta
print(build_meta.prepare_metadata_for_build_wheel(sys.argv[1]))
"""


def test_the_metadata_builds_without_a_warning(tmp_path) -> None:
    project = tmp_path / "project"
    (project / "bulk_contacts").mkdir(parents=True)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, project / name)
    (project / "bulk_contacts" / "__init__.py").write_text("")
    (tmp_path / "out").mkdir()
    built = subprocess.run(
        [sys.executable, "-W", "error", "-c", BUILD_METADATA, str(tmp_path / "out")],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    assert "Warning" not in built.stderr, built.stderr[-3000:]
    metadata = (tmp_path / "out" / built.stdout.split()[-1] / "METADATA").read_text()
    assert "License-Expression: MIT" in metadata.splitlines(), metadata[:2000]


def test_the_build_backend_required_reads_a_license_expression() -> None:
    """`license = "MIT"` (an SPDX expression) is read by setuptools 77 and later: an older one
    refuses the file, so the lower bound says 77."""
    assert isinstance(PYPROJECT["project"]["license"], str)
    (backend,) = [r for r in PYPROJECT["build-system"]["requires"] if r.startswith("setuptools")]
    lower = re.fullmatch(r"setuptools>=(\d+)(?:\.\d+)*", backend)
    assert lower is not None and int(lower.group(1)) >= 77, backend
