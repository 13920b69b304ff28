"""Every training and sandbox command has help with an example; the docs' YAML examples load and run."""

from __future__ import annotations

import re

import click
import pytest

from crmkit.training.generate import generate
from crmkit.training.mask import load_rules
from crmkit.training.scenario import load_scenario
from tests.conftest import ROOT, cli

DOCS = ROOT / "docs"


def commands() -> list[tuple[str, ...]]:
    from crmkit.cli import main

    out = []
    for group in ("training", "sandbox"):
        cmd = main.get_command(click.Context(main), group)
        assert isinstance(cmd, click.Group)
        out.append((group,))
        out += [(group, name) for name in cmd.commands]
    return out


@pytest.mark.parametrize("path", commands(), ids=lambda p: " ".join(p))
def test_help_has_an_example(path):
    res = cli(*path, "--help")
    assert res.exit_code == 0
    assert "Example:" in res.output
    assert f"crmkit {path[0]}" in res.output.split("Example:")[1]


def yaml_blocks(page: str) -> list[str]:
    return re.findall(r"```yaml\n(.*?)```", (DOCS / page).read_text(encoding="utf-8"), flags=re.S)


@pytest.mark.parametrize(
    "page", ["training-scenarios.md", "training-legacy.md", "training-masking.md", "training-sandboxes.md"]
)
def test_page_exists_and_links_resolve(page):
    text = (DOCS / page).read_text(encoding="utf-8")
    for target in re.findall(r"\]\(([\w.-]+\.md)", text):
        assert (DOCS / target).exists(), target


def test_scenario_example_generates(tmp_path):
    (block,) = yaml_blocks("training-scenarios.md")
    path = tmp_path / "example.yaml"
    path.write_text(block, encoding="utf-8")
    s, _ = load_scenario(path)
    world = generate(s, 1)
    assert world.counts()["contacts"] == 91 and len(world.exercises) == 3


def test_legacy_rates_example_is_a_valid_legacy_section(tmp_path):
    (block,) = yaml_blocks("training-legacy.md")
    scenario = (ROOT / "configs" / "training" / "sales-en.yaml").read_text(encoding="utf-8")
    path = tmp_path / "s.yaml"
    path.write_text(scenario + block, encoding="utf-8")
    s, _ = load_scenario(path)
    assert s.headers == "zh" and s.legacy.rates.duplicates == 0.04


def test_masking_example_loads(tmp_path, monkeypatch):
    (block,) = yaml_blocks("training-masking.md")
    path = tmp_path / "rules.yaml"
    path.write_text(block, encoding="utf-8")
    monkeypatch.setenv("CRMKIT_MASK_SALT", "doc-example-salt")
    rules = load_rules(path)
    assert rules.subset is not None and rules.subset.department == "SALES_W"
    assert rules.columns["contacts"]["notes"] == "text"  # replaced wholesale by default


@pytest.mark.parametrize("config", sorted((ROOT / "configs" / "training").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_load(config, monkeypatch):
    monkeypatch.setenv("CRMKIT_MASK_SALT", "config-check-salt")
    if config.name.startswith("mask"):
        load_rules(config)
    else:
        s, _ = load_scenario(config)
        assert generate(s, 1).counts()["contacts"] > 0
