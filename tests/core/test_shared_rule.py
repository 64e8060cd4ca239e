"""The rule for ``../shared``: skipped on a developer's machine, a failure under CI=true."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _run_golden_test(tmp_path: Path, ci: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "NAPARI_VSR_SHARED": str(tmp_path / "absent"), "CI": ci}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            str(
                REPO
                / "tests/models/test_realbasicvsr_net.py::test_parameter_names_and_shapes_match_official"
            ),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_missing_shared_data_skips_outside_ci(tmp_path):
    r = _run_golden_test(tmp_path, ci="")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "1 skipped" in r.stdout


def test_missing_shared_data_fails_under_ci(tmp_path):
    r = _run_golden_test(tmp_path, ci="true")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "required under CI=true" in r.stdout
