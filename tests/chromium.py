"""Headless Chromium for the HTML report checks: ``browse(page, tmp_path, "--dump-dom")``.

Needs Debian's ``chromium`` (``apt-get install -y chromium``; ``.ci/run`` installs it).
Without it a test skips, unless CRMKIT_REQUIRE_SERVICES=1, where it fails.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REQUIRE

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        msg = "chromium is not installed (apt-get install -y chromium)"
        if REQUIRE:
            pytest.fail(f"{msg} and CRMKIT_REQUIRE_SERVICES=1")
        pytest.skip(msg)
    return path


def browse(page: Path, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    profile = tmp_path / "chromium-profile"
    return subprocess.run(
        [chromium(), *FLAGS, f"--user-data-dir={profile}", *args, page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def dump_dom(page: Path, tmp_path: Path) -> str:
    """The DOM after Chromium has loaded ``page``."""
    res = browse(page, tmp_path, "--dump-dom")
    assert res.returncode == 0, res.stderr[-2000:]
    return res.stdout
