"""Artefacts: kind checks, and models pickled before a class moved modules still load."""

from __future__ import annotations

import pickle

import pandas as pd
import pytest

from oncoflow.artefacts import FORMAT, load_artefact, save_artefact
from oncoflow.errors import OncoflowError
from oncoflow.harmonize.inputs import _CovariateEncoder
from oncoflow.survival.design import ClinicalEncoder


def test_an_artefact_round_trips_and_refuses_another_kind(tmp_path):
    encoder = ClinicalEncoder().fit(pd.DataFrame({"age": [50.0, 60.0], "sex": ["F", "M"]}))
    save_artefact(tmp_path / "a.pkl", encoder, kind="encoder")
    assert load_artefact(tmp_path / "a.pkl", kind="encoder").numeric_ == {"age": 55.0}
    with pytest.raises(OncoflowError, match="holds a 'encoder' artefact, expected 'combat'"):
        load_artefact(tmp_path / "a.pkl", kind="combat")


@pytest.mark.parametrize(
    "old_module", ["oncoflow.studies.net_survival", "oncoflow.survival.protocol"]
)
def test_a_model_pickled_under_an_old_module_loads(tmp_path, old_module):
    """models.pkl written when the net_survival classes lived in an older module."""
    encoder = ClinicalEncoder().fit(pd.DataFrame({"age": [50.0, 70.0]}))
    envelope = {"format": FORMAT, "kind": "net_survival", "oncoflow": "0.1.0", "object": encoder}
    data = pickle.dumps(envelope, protocol=2)  # GLOBAL opcodes: module names as plain text
    old = data.replace(b"oncoflow.survival.design\n", old_module.encode() + b"\n")
    assert old != data
    (tmp_path / "old.pkl").write_bytes(old)
    loaded = load_artefact(tmp_path / "old.pkl", kind="net_survival")
    assert isinstance(loaded, ClinicalEncoder)
    assert loaded.numeric_ == {"age": 60.0}


def test_a_combat_encoder_pickled_before_it_moved_loads(tmp_path):
    """ComBat artefacts hold a covariate encoder once defined in oncoflow.harmonize.combat."""
    encoder = _CovariateEncoder().fit(pd.DataFrame({"age": [40.0, 60.0]}))
    envelope = {"format": FORMAT, "kind": "combat", "oncoflow": "0.1.0", "object": encoder}
    data = pickle.dumps(envelope, protocol=2)
    old = data.replace(b"oncoflow.harmonize.inputs\n", b"oncoflow.harmonize.combat\n")
    assert old != data
    (tmp_path / "old.pkl").write_bytes(old)
    loaded = load_artefact(tmp_path / "old.pkl", kind="combat")
    assert type(loaded) is _CovariateEncoder
    assert loaded == encoder
