"""Recipe ``net_survival``: radiomics + PET + pathomics + clinical penalised Cox models (seed 002).

Reads the CT/PET radiomics, PET metrics and whole-slide pathomics tables of each patient (ComBat
harmonised across sites when ``harmonize`` is on) and the clinical columns; predicts OS and PFS.
The protocol (nested selection, lasso path, fold ensemble): :mod:`oncoflow.survival.protocol`.
"""

from oncoflow.studies.recipe import Recipe

RECIPE = Recipe(
    name="net_survival",
    summary="radiomics + pathomics + clinical penalised Cox models of OS and PFS",
    family="survival",
    models=("cox_radiopathomics",),
    stages=("radiomics", "pathomics", "harmonize"),
    evaluation=("survival",),
    applicable=True,
)
