"""crmkit.paths: the project a configuration file belongs to, and what it may name."""

from __future__ import annotations

from pathlib import Path

import pytest

from crmkit.paths import PathNotAllowed, allow_paths, confine, module_allowed, project_root


@pytest.fixture(autouse=True)
def _no_allowed_paths():
    allow_paths(())
    yield
    allow_paths(())


@pytest.mark.parametrize("marker", ["crmkit.yaml", "pyproject.toml", ".git"])
def test_the_nearest_folder_with_a_marker_is_the_project(tmp_path, marker):
    (tmp_path / "p" / "migrate" / "mappings").mkdir(parents=True)
    (tmp_path / "p" / marker).touch()
    assert project_root(tmp_path / "p" / "migrate" / "mappings") == (tmp_path / "p").resolve()


def test_without_a_marker_the_folder_itself_is_the_project(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    assert project_root(tmp_path / "a" / "b") == (tmp_path / "a" / "b").resolve()


def test_a_home_folder_under_git_is_not_a_project(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".git").mkdir()
    (tmp_path / "work").mkdir()
    assert project_root(tmp_path / "work") == (tmp_path / "work").resolve()


def test_confine_resolves_inside_and_refuses_outside(tmp_path):
    (tmp_path / "p" / "sub").mkdir(parents=True)
    (tmp_path / "p" / "crmkit.yaml").touch()
    base = tmp_path / "p" / "sub"
    assert confine("../data.csv", base) == (tmp_path / "p" / "data.csv").resolve()
    with pytest.raises(PathNotAllowed, match=r"outside the project .*--allow-path"):
        confine("../../x.csv", base)
    with pytest.raises(PathNotAllowed):
        confine("/etc/passwd", base)
    (base / "link").symlink_to("/etc/passwd")
    with pytest.raises(PathNotAllowed):
        confine("link", base)


def test_allow_path_adds_a_root_and_a_path_no_file_names_is_not_confined(tmp_path):
    base = tmp_path / "p"
    base.mkdir()
    allow_paths([tmp_path / "shared"])
    assert confine("../shared/x.csv", base) == (tmp_path / "shared" / "x.csv").resolve()
    assert confine("/etc/passwd", None) == Path("/etc/passwd").resolve()


def test_a_module_found_outside_the_project_is_refused(tmp_path, monkeypatch):
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "crmkit_test_evil_mod.py").write_text("raise SystemExit('ran')\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path / "elsewhere"))
    (tmp_path / "p").mkdir()
    with pytest.raises(PathNotAllowed, match="module crmkit_test_evil_mod"):
        module_allowed("crmkit_test_evil_mod", tmp_path / "p")
    module_allowed("json", tmp_path / "p")  # the standard library is installed
    module_allowed("polars", tmp_path / "p")  # so is site-packages
