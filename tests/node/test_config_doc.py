"""docs/configuration.md is generated from NodeConfig, and every setting is both a TOML key and a flag of
`seguro node run`: this fails when the reference, the dataclass and the command drift apart."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from seguro.cli.node import run
from seguro.node.config import NodeConfig
from seguro.node.config_doc import COMMAND, EXAMPLE, render

ROOT = Path(__file__).resolve().parents[2]
FLAGS_ONLY = {"config_path", "ready_file", "log_level"}  # how to run a node, not how the node is


def test_the_reference_is_generated_from_the_code() -> None:
    path = ROOT / "docs" / "configuration.md"
    assert path.is_file(), f"docs/configuration.md is missing: generate it with `{COMMAND}`"
    assert path.read_text() == render(), f"docs/configuration.md is stale: regenerate it with `{COMMAND}`"


def test_the_module_prints_the_reference() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "seguro.node.config_doc"], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout
    assert out == render()


def test_every_setting_has_a_one_line_description_and_a_flag() -> None:
    for f in fields(NodeConfig):
        doc, flag = f.metadata.get("doc", ""), f.metadata.get("flag", "")
        assert doc.strip() and "\n" not in doc, f"{f.name} needs a one-line metadata doc in NodeConfig"
        assert flag.startswith("--"), f"{f.name} needs its flag of `seguro node run` in NodeConfig"


def test_every_setting_is_a_flag_and_every_flag_a_setting() -> None:
    options = {p.name: p for p in run.params if isinstance(p, click.Option)}
    settings = {f.name: f for f in fields(NodeConfig)}
    assert sorted(set(settings) - set(options)) == [], "settings without a flag of `seguro node run`"
    assert sorted(set(options) - set(settings) - FLAGS_ONLY) == [], "flags of `node run` that are no setting"
    for name, f in settings.items():
        option = options[name]
        assert "/".join(option.opts + option.secondary_opts) == f.metadata["flag"], name
        assert not option.required, f"{name}: a flag may not be required, the TOML file may set it"


def test_the_flags_reach_the_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each flag's value arrives under its key (and the file's keys under theirs)."""
    seen: dict[str, object] = {}

    def serve(config_path: Path | None, flags: dict[str, object], *_: object) -> None:
        seen.update(NodeConfig.load(config_path, flags).__dict__)

    monkeypatch.setattr("seguro.cli.node.serve_node", serve)
    path = tmp_path / "node.toml"
    path.write_text(EXAMPLE)
    args = ["--config", str(path), "--lease-margin", "0.5", "--runtime-timeout", "7", "--runtime", "none",
            "--ttl", "4", "--id", "n2", "--data", str(tmp_path / "d"), "--no-ames-filter"]  # fmt: skip
    result = CliRunner().invoke(run, args)
    assert result.exit_code == 0, result.output
    assert seen["lease_margin_s"] == 0.5 and seen["runtime_timeout_s"] == 7.0 and seen["runtime"] == ("none",)
    assert seen["lease_ttl_s"] == 4 and seen["node_id"] == "n2" and seen["data_dir"] == tmp_path / "d"
    assert seen["ames_filter"] is False and seen["ship"] == "zod" and seen["ack_replicas"] == 1


def test_the_example_is_a_valid_configuration(tmp_path: Path) -> None:
    path = tmp_path / "node.toml"
    path.write_text(EXAMPLE)
    cfg = NodeConfig.load(path, {})
    assert cfg.etcd[0] == "http://10.0.0.1:2379" and cfg.advertised_grpc(7000) == "10.0.0.11:7000"
