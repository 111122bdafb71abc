"""Provenance records: settings hash of a job's options and the software versions."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import oncoflow
from oncoflow import cli
from oncoflow.errors import OncoflowError
from oncoflow.provenance import Provenance, file_hash, settings_hash, software_versions


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    parser.add_argument("--image", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--params", type=Path)
    parser.add_argument("--harmonized", type=Path)
    parser.add_argument("--label", type=int, default=1)
    parser.add_argument("--patient")
    parser.add_argument("--verbose", action="store_true")
    return parser


def test_settings_hash_ignores_key_order_and_sees_values():
    assert settings_hash({"a": 1, "b": [1, 2]}) == settings_hash({"b": [1, 2], "a": 1})
    assert settings_hash({"a": 1}) != settings_hash({"a": 2})
    assert settings_hash({"a": 1}) != settings_hash({"a": "1"})
    assert len(settings_hash({})) == 16
    # numpy floats hash as floats, paths as their string form
    assert settings_hash({"x": np.float64(0.5), "p": Path("a")}) == settings_hash(
        {"x": 0.5, "p": "a"}
    )


def test_software_versions_lists_oncoflow_and_installed_pins():
    versions = software_versions()
    assert versions["oncoflow"] == oncoflow.__version__
    assert versions["numpy"] == np.__version__
    assert "pyradiomics-bhklab" in versions
    assert "no-such-package" not in software_versions(("no-such-package",))
    # read once per process, but each caller gets its own dict
    versions["numpy"] = "edited"
    assert software_versions()["numpy"] == np.__version__


def test_hash_covers_settings_not_paths_or_identity(tmp_path):
    params = tmp_path / "p.yaml"
    params.write_text("binWidth: 25\n")
    parser = _parser()

    def record(*argv: str) -> Provenance:
        return Provenance.from_arguments(parser, parser.parse_args(list(argv)))

    base = record(
        "--image", "a.nii.gz", "--out", "x.csv", "--params", str(params), "--patient", "P1"
    )
    moved = record("--image", "/elsewhere/b.nii.gz", "--out", "y/z.csv", "--params", str(params))
    assert base.config_hash == moved.config_hash  # paths and the patient do not enter
    assert base.settings == {
        "image": True,
        "out": True,
        "params": f"sha256:{file_hash(params)}",
        "label": 1,
    }
    other_label = record("--image", "a", "--out", "x", "--params", str(params), "--label", "2")
    assert other_label.config_hash != base.config_hash
    harmonized = record("--image", "a", "--out", "x", "--params", str(params), "--harmonized", "h")
    assert harmonized.config_hash != base.config_hash  # an optional input given is a setting
    assert (
        harmonized.config_hash
        == record(
            "--image", "a", "--out", "x", "--params", str(params), "--harmonized", "/other/h"
        ).config_hash
    )
    params.write_text("binWidth: 5\n")  # same path, other content: another hash
    assert record("--image", "a", "--out", "x", "--params", str(params)).config_hash != (
        base.config_hash
    )


def test_cli_run_logs_provenance_and_write_json_embeds_it(tmp_path, caplog):
    out = tmp_path / "deep" / "metrics.json"
    seen = {}

    def main(args: argparse.Namespace) -> None:
        seen["provenance"] = args.provenance
        cli.write_json(args.out, {"score": 0.7}, args)

    with caplog.at_level(logging.INFO, logger="oncoflow"):
        code = cli.run(main, _parser(), ["--image", "a", "--out", str(out), "--label", "3"])
    assert code == 0
    payload = json.loads(out.read_text())
    assert payload["score"] == 0.7
    assert payload["provenance"] == seen["provenance"].as_dict()
    assert payload["provenance"]["settings"] == {"image": True, "out": True, "label": 3}
    assert payload["provenance"]["versions"]["oncoflow"] == oncoflow.__version__
    assert f"config_hash {payload['provenance']['config_hash']}" in caplog.text


def test_write_json_names_the_file_it_cannot_write(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(OncoflowError, match="cannot write"):
        cli.write_json(blocker / "out.json", {}, argparse.Namespace())
    with pytest.raises(OncoflowError, match=r"file/out\.csv: cannot write"):
        cli.write_csv(blocker / "out.csv", pd.DataFrame({"a": [1]}))
    cli.write_csv(tmp_path / "deep" / "t.csv", pd.DataFrame({"a": [1, 2]}))
    assert (tmp_path / "deep" / "t.csv").read_text() == "a\n1\n2\n"
