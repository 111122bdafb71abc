"""Tabular baselines: what a model must beat, trained like a model.

A baseline is a penalised logistic, multinomial or Cox model of the tabular variables a
clinician has without any image model: the study's clinical columns (``baseline_clinical``),
and those plus the sizes of the given masks (``baseline_clinical_size``; ``baseline_size`` for a
study without clinical columns), or, where a recipe asks for it, plus the lesion statistics of
the masks (``baseline_lesion``: image mean / SD inside each label and its elongation). It is
trained in the study's folds under the same rules as the study's models (every statistic and
the penalty from the fold's training patients only),
writes ``predictions.csv`` like any model and goes through the same evaluation, comparisons and
report (``docs/design.md``, "Stage contracts").

- :mod:`~oncoflow.baselines.sizes`: mask volumes and lesion statistics per patient and time point;
- :mod:`~oncoflow.baselines.design`: the targets of a study and the rows a baseline fits on;
- :mod:`~oncoflow.baselines.fit`: the penalised models and their inner-CV penalty;
- :mod:`~oncoflow.baselines.train`: the fold protocol that writes the predictions.
"""

from oncoflow.baselines.design import (
    BASELINE_NAMES,
    BASELINE_PREFIX,
    baseline_inputs,
    baseline_name,
    study_baselines,
)

__all__ = [
    "BASELINE_NAMES",
    "BASELINE_PREFIX",
    "baseline_inputs",
    "baseline_name",
    "study_baselines",
]
