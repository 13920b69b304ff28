"""Only ``crmkit`` lands in site-packages: the feature folders install as ``crmkit.*``."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _setuptools() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def test_every_package_folder_is_listed_and_mapped() -> None:
    cfg = _setuptools()
    dirs = cfg["package-dir"]
    found = set()
    for init in ROOT.glob("**/__init__.py"):
        rel = init.parent.relative_to(ROOT)
        if rel.parts[0] in {"tests", "bench", "build", "examples", "docs"} or rel.parts[0].startswith("."):
            continue
        top = rel.parts[0]
        package = next((p for p, d in dirs.items() if d == top), "crmkit" if top == "crmkit" else None)
        assert package is not None, f"{rel} is not mapped to a crmkit.* package in pyproject.toml"
        prefix = package.split(".") if top != "crmkit" else ["crmkit"]
        found.add(".".join([*prefix, *rel.parts[1:]]))
    listed = set(cfg["packages"])
    assert found <= listed, f"missing from pyproject.toml's packages: {sorted(found - listed)}"
    for package in listed:  # data-only packages (configs, alembic versions) have no __init__.py
        top = ".".join(package.split(".")[:2])
        folder = ROOT / dirs.get(top, "crmkit/" + top.partition(".")[2] if "." in top else "crmkit")
        assert (folder.joinpath(*package.split(".")[2:])).is_dir(), f"{package} has no folder"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    # pip builds in the source tree (build/, *.egg-info): build a copy, so the run writes
    # nothing into the checkout and no stale build/lib of an earlier tree enters the wheel
    src = out / "src"
    skip = shutil.ignore_patterns(".*", "build", "*.egg-info", "__pycache__", "tests", "bench", "docs")
    shutil.copytree(ROOT, src, ignore=skip)
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(src)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    (built,) = out.glob("crmkit-*.whl")
    return built


def test_the_wheel_holds_only_crmkit(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    tops = {name.split("/")[0] for name in names}
    assert tops == {"crmkit", wheel.name.split("-py3")[0] + ".dist-info"}, tops
    for must in (
        "crmkit/migrate/pipeline/run.py",
        "crmkit/api/app.py",
        "crmkit/configs/loadtest/smoke.yaml",
        "crmkit/schema/alembic/script.py.mako",
    ):
        assert must in names, must


def test_installed_it_runs_from_site_packages_alone(wheel: Path, tmp_path: Path) -> None:
    """``pip install`` of the wheel adds only crmkit; the commands run from there, not from the checkout."""
    site = tmp_path / "site"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert {p.name for p in site.iterdir()} - {"bin"} == {"crmkit", wheel.name.split("-py3")[0] + ".dist-info"}
    env = {**os.environ, "PYTHONPATH": str(site)}
    where = subprocess.run(
        [
            sys.executable,
            "-c",
            "import crmkit.migrate.pipeline.run as r, crmkit.loadtest.profile as p; "
            "print(r.__file__); print(sorted(x.stem for x in p.BUILTIN_DIR.glob('*.yaml')))",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=120,
    )
    assert where.returncode == 0, where.stderr[-2000:]
    assert where.stdout.startswith(str(site)), where.stdout
    assert "smoke" in where.stdout.splitlines()[1]
    plan = subprocess.run(
        [sys.executable, "-m", "crmkit", "migrate", "plan", str(ROOT / "migrate" / "mappings" / "acme-legacy.yaml")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=300,
    )
    assert plan.returncode == 0, plan.stderr[-2000:]
    assert "contacts" in plan.stdout
