"""Missing inputs by declared policy (oncoflow.workflow.missing) and fold-only imputation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from oncoflow.errors import ConfigError
from oncoflow.features.tabular import TabularEncoder
from oncoflow.survival.design import ClinicalEncoder
from oncoflow.workflow.missing import (
    Requirements,
    apply_policy,
    find_missing,
    policy_of,
    refusal_message,
    requirements,
)

LIVER = {
    "lesions": {"images": ["MR_T1", "MR_T2"]},
    "clinical": ["afp_pre", "age"],
}


def _images(rows: list[tuple[str, int, str, str]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["patient_id", "timepoint", "modality", "series"])


def _liver_images() -> pd.DataFrame:
    rows = [(p, tp, "MR", s) for p in ("L1", "L2", "L3") for tp in (0, 1) for s in ("T1", "T2")]
    rows.remove(("L2", 1, "MR", "T2"))  # one sequence missing at the post time point
    rows = [r for r in rows if not (r[0] == "L3" and r[1] == 1)]  # a whole visit missing
    return _images(rows)


def _clinical() -> pd.DataFrame:
    return pd.DataFrame({"patient_id": ["L1", "L2", "L3"], "afp_pre": [3.0, np.nan, 5.0]}).assign(
        age=[50, 60, 70]
    )


def test_requirements_come_from_the_config_blocks_and_the_recipe():
    study = {
        "lesions": {"images": ["CT", "PET"]},
        "radiomics": {"images": ["CT"]},
        "pet": {"images": ["PET"]},
        "pathomics": True,
        "clinical": ["age"],
    }
    needs = requirements(study, timepoints=(0,), partial=False)
    assert needs == Requirements(("CT", "PET"), ("WSI",), (0,), ("age",), False)


def test_every_gap_of_every_patient_is_found():
    needs = requirements(LIVER, timepoints=(0, 1), partial=False)
    gaps = find_missing(_liver_images(), needs, _clinical())
    found = {(g.patient, g.kind, g.what) for g in gaps}
    assert found == {
        ("L2", "modalities", "MR_T2 at time point 1"),
        ("L3", "timepoints", "time point 1"),
        ("L2", "clinical", "clinical afp_pre"),
    }


def test_refuse_lists_every_patient_and_what_it_lacks():
    needs = requirements(LIVER, timepoints=(0, 1), partial=False)
    decision = apply_policy(find_missing(_liver_images(), needs, _clinical()), policy_of({}), needs)
    assert len(decision.refused) == 3
    assert not decision.dropped
    message = refusal_message("liver_response", decision.refused)
    assert "2 patient(s)" in message
    assert "L2: MR_T2 at time point 1, clinical afp_pre" in message
    assert "L3: time point 1" in message
    assert "studies.liver_response.missing" in message


def test_drop_patient_drops_the_whole_patient_and_impute_keeps_it():
    needs = requirements(LIVER, timepoints=(0, 1), partial=False)
    policy = policy_of({"missing": {"modalities": "drop_patient", "clinical": "impute"}})
    decision = apply_policy(find_missing(_liver_images(), needs, _clinical()), policy, needs)
    assert decision.dropped == {"L2": ["MR_T2 at time point 1"]}
    # L2 is dropped: its clinical gap is not imputed; L3's missing visit stays refused
    assert decision.imputed == {}
    assert [(g.patient, g.what) for g in decision.refused] == [("L3", "time point 1")]
    policy = policy_of({"missing": {"timepoints": "drop_patient", "clinical": "impute"}})
    decision = apply_policy(find_missing(_liver_images(), needs, _clinical()), policy, needs)
    assert decision.dropped == {"L3": ["time point 1"]}
    assert decision.imputed == {"afp_pre": ["L2"]}
    assert decision.summary()["policy"]["clinical"] == "impute"


def test_use_available_only_where_the_models_read_fewer_time_points():
    images = _images(
        [("P1", tp, "CT", "venous") for tp in (0, 1, 2)]
        + [("P2", tp, "CT", "venous") for tp in (0, 2)]
    )
    study = {"lesions": {"images": ["CT_venous"]}}
    sequence = requirements(study, timepoints=None, partial=True)
    gaps = find_missing(images, sequence)
    assert [(g.patient, g.what) for g in gaps] == [("P2", "time point 1")]
    policy = policy_of({"missing": {"timepoints": "use_available"}})
    assert apply_policy(gaps, policy, sequence).partial == {"P2": ["time point 1"]}
    fixed = requirements(study, timepoints=(0, 1), partial=False)
    with pytest.raises(ConfigError, match="use_available"):
        apply_policy(gaps, policy, fixed)


def test_unknown_policy_is_refused():
    with pytest.raises(ConfigError, match="drop"):
        policy_of({"missing": {"clinical": "drop"}})
    with pytest.raises(ConfigError, match="unknown key"):
        policy_of({"missing": {"images": "refuse"}})


@pytest.mark.parametrize("encoder", [TabularEncoder, ClinicalEncoder])
def test_imputation_reads_the_fold_training_patients_only(encoder):
    """Changing a test patient's values never changes the value imputed for another patient."""
    rng = np.random.default_rng(0)
    train = pd.DataFrame({"afp": rng.lognormal(2, 1, 30), "age": rng.normal(60, 8, 30)})
    train.loc[[3, 7], "afp"] = np.nan
    test = pd.DataFrame({"afp": [np.nan, 12.0, 40.0], "age": [55.0, np.nan, 70.0]})
    fitted = encoder().fit(train)

    def imputed(rows: pd.DataFrame) -> np.ndarray:
        out = fitted.transform(rows)
        return np.asarray(out, dtype=float)[0]  # the first test patient's encoded row

    before = imputed(test)
    changed = test.copy()
    changed.loc[1:, "afp"] = [1e6, -5.0]  # other test patients' values
    changed.loc[1, "age"] = 99.0
    assert np.array_equal(imputed(changed), before)
    # the fill value is a statistic of the training rows: refitting on other training rows moves it
    other = train.copy()
    other.loc[:14, "afp"] *= 50
    assert not np.array_equal(np.asarray(encoder().fit(other).transform(test), float)[0], before)
