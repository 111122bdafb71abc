"""Artefacts: kind checks, and models pickled before a class moved modules still load."""

from __future__ import annotations

import pickle

import pandas as pd
import pytest

from oncoflow.artefacts import FORMAT, load_artefact, save_artefact
from oncoflow.errors import OncoflowError
from oncoflow.survival.protocol import ClinicalEncoder


def test_an_artefact_round_trips_and_refuses_another_kind(tmp_path):
    encoder = ClinicalEncoder().fit(pd.DataFrame({"age": [50.0, 60.0], "sex": ["F", "M"]}))
    save_artefact(tmp_path / "a.pkl", encoder, kind="encoder")
    assert load_artefact(tmp_path / "a.pkl", kind="encoder").numeric_ == {"age": 55.0}
    with pytest.raises(OncoflowError, match="holds a 'encoder' artefact, expected 'combat'"):
        load_artefact(tmp_path / "a.pkl", kind="combat")


def test_a_model_pickled_under_the_old_study_module_loads(tmp_path):
    """models.pkl written when the net_survival classes lived in oncoflow.studies.net_survival."""
    encoder = ClinicalEncoder().fit(pd.DataFrame({"age": [50.0, 70.0]}))
    envelope = {"format": FORMAT, "kind": "net_survival", "oncoflow": "0.1.0", "object": encoder}
    data = pickle.dumps(envelope, protocol=2)  # GLOBAL opcodes: module names as plain text
    old = data.replace(b"oncoflow.survival.protocol\n", b"oncoflow.studies.net_survival\n")
    assert old != data
    (tmp_path / "old.pkl").write_bytes(old)
    loaded = load_artefact(tmp_path / "old.pkl", kind="net_survival")
    assert isinstance(loaded, ClinicalEncoder)
    assert loaded.numeric_ == {"age": 60.0}
