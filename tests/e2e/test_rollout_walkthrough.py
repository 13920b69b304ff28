"""The rollout walkthrough (docs/rollout-walkthrough.md) runs as written, on the demo data."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.slow
DOC = ROOT / "docs" / "rollout-walkthrough.md"


def commands() -> list[str]:
    block = re.search(r"```sh\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    assert block, "the walkthrough has a sh block"
    return [line for line in block.group(1).splitlines() if line.strip() and not line.startswith("#")]


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """The parts of the repository the walkthrough reads, so that build/ lands in a temp dir."""
    for part in ("configs", "examples", "migrate/mappings"):
        shutil.copytree(ROOT / part, tmp_path / part)
    (tmp_path / "crmkit.yaml").write_text("", encoding="utf-8")  # a project root, as the checkout's pyproject.toml is
    return tmp_path


def test_the_walkthrough_runs_and_ends_with_every_wave_migrated(repo):
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    expected_exit = {0: 1, 4: 1}  # the two `status` calls while a wave waits (held by a gate)
    for i, cmd in enumerate(commands()):
        res = subprocess.run(cmd, shell=True, cwd=repo, env=env, capture_output=True, text=True, timeout=180)
        want = expected_exit.get(i, 0)
        assert res.returncode == want, f"{cmd}\n{res.stdout[-2000:]}\n{res.stderr[-2000:]}"
        if i == 0:
            assert "sandboxes" in res.stdout and "approval:it-lead" in res.stdout
        if i == 4:
            assert "feedback" in res.stdout and "loadtest" in res.stdout and "reconciliation" in res.stdout
    final = subprocess.run(
        f"{sys.executable} -m crmkit rollout status configs/rollout/acme.yaml --json",
        shell=True,
        cwd=repo,
        capture_output=True,
        text=True,
    )
    import json

    doc = json.loads(final.stdout)
    assert doc["next_wave"] is None and [w["status"] for w in doc["waves"]] == ["migrated", "migrated"]
    page = (repo / "build" / "rollout" / "report.html").read_text(encoding="utf-8")
    assert "SALES_N" in page and "SALES_S" in page
