"""The JSON Schemas are the data contract: complete, strict and consistent with config.yaml."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from oncoflow.schemas import TABLES, columns, load_schema, required_columns

REPO = Path(__file__).resolve().parents[2]
SCHEMAS = ["config", *TABLES]


def _objects(node: Any, where: str = "#"):
    """Yield (json-pointer, schema) for every object schema in ``node``."""
    if isinstance(node, dict):
        if node.get("type") == "object" or "properties" in node:
            yield where, node
        for key, value in node.items():
            yield from _objects(value, f"{where}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _objects(value, f"{where}/{i}")


@pytest.mark.parametrize("name", SCHEMAS)
def test_schema_is_valid_draft_2020_12(name):
    schema = load_schema(name)
    assert schema["$schema"].endswith("2020-12/schema")
    jsonschema.Draft202012Validator.check_schema(schema)


@pytest.mark.parametrize("name", SCHEMAS)
def test_every_key_described_and_objects_closed(name):
    schema = load_schema(name)
    undocumented, open_objects = [], []
    for where, obj in _objects(schema):
        extra = obj.get("additionalProperties", True)
        # closed: no extra keys, or a typed map (every value checked against a schema)
        if extra is True and where != "#/properties/studies":
            open_objects.append(where)
        for key, prop in obj.get("properties", {}).items():
            if not (isinstance(prop, dict) and prop.get("description")):
                undocumented.append(f"{where}/properties/{key}")
    assert undocumented == []
    assert open_objects == []


def test_table_enums_and_patterns():
    images = load_schema("images")["properties"]
    assert images["modality"]["enum"] == ["CT", "PET", "MR", "WSI"]
    assert "-" in images["series"]["enum"]
    assert load_schema("splits")["properties"]["split"]["enum"] == [
        "train",
        "internal_test",
        "external_test",
    ]
    for table in TABLES:
        assert "patient_id" in required_columns(table)
        pattern = load_schema(table)["properties"]["patient_id"]["pattern"]
        validator = jsonschema.Draft202012Validator({"type": "string", "pattern": pattern})
        assert validator.is_valid("PP001")
        assert not validator.is_valid("Doe, Jane")
        assert not validator.is_valid("")


def test_default_config_is_valid_and_lists_every_study():
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    jsonschema.Draft202012Validator(load_schema("config")).validate(config)
    from oncoflow import STUDIES

    assert tuple(config["studies"]) == STUDIES
    assert all(study["enabled"] for study in config["studies"].values())
    assert config["demo"]["enabled"] is True


def test_config_schema_rejects_typos():
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["studies"]["net_survival"]["enabeld"] = True
    with pytest.raises(jsonschema.ValidationError, match="enabeld"):
        jsonschema.Draft202012Validator(load_schema("config")).validate(config)


def test_config_clinical_and_targets_are_table_columns():
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    for name, study in config["studies"].items():
        assert set(study.get("clinical", [])) <= set(columns("clinical")), name
        assert set(study["targets"]) <= set(columns("outcomes")), name


def test_validate_config_fills_the_same_defaults_as_snakemake_validate():
    """The Snakefile's own validation (no pure-Python re-parse of the schema at every start)
    fills exactly the defaults snakemake.utils.validate fills, and names the bad key."""
    import copy

    from snakemake.utils import validate

    from oncoflow.schemas import validate_config

    base = yaml.safe_load((REPO / "config.yaml").read_text())
    del base["batch"]  # a missing block gets its defaults too
    del base["evaluate"]["alpha"]
    ours, theirs = copy.deepcopy(base), copy.deepcopy(base)
    validate_config(ours)
    validate(theirs, schema=str(REPO / "schemas" / "config.schema.yaml"))
    assert ours == theirs
    assert ours["batch"]["patients"] == 50
    assert ours["evaluate"]["alpha"] == 0.05
    base["studies"]["nsclc_mmdls"]["folds"]["k"] = 1
    with pytest.raises(ValueError, match=r"config: studies\.nsclc_mmdls\.folds\.k: 1 is less"):
        validate_config(base)
