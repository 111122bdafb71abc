"""Recipe ``pancreas_progression``: CNN lesion extractor + LSTM over CT time points (seed 000).

Reads the lesion crops of three CT phases at each time point and the baseline clinical columns;
predicts progression at the next visit (binary). Trainer:
:class:`oncoflow.deep.train_pancreas.PancreasTask`.
"""

from oncoflow.studies.recipe import Recipe

RECIPE = Recipe(
    name="pancreas_progression",
    summary="CNN lesion extractor + LSTM over CT time points (progression at the next visit)",
    family="deep",
    models=("cnn_lstm",),
    trainer="oncoflow.deep.train_pancreas:PancreasTask",
    settings="oncoflow.deep.train_pancreas:PancreasSettings",
    stages=("lesions",),
    evaluation=("binary",),
    applicable=True,
    timepoints=None,
    partial_timepoints=True,
)
