"""Recipe ``nsclc_mmdls``: MM-DLS, multi-task CT + PET network for NSCLC (seed 004).

Reads CT and PET lesion crops, the converted CT (its lung/lesion segmentor), the radiomics and
PET feature tables and the clinical columns; predicts histology (binary), stage (multi-class),
DFS and OS (survival at ``evaluate.horizons_days``). The inner split is stratified by
``os_event``. Trainer: :class:`oncoflow.deep.train_mmdls.MMDLSTask`.
"""

from oncoflow.studies.recipe import Recipe

RECIPE = Recipe(
    name="nsclc_mmdls",
    summary="MM-DLS: multi-task CT + PET network (histology, stage, DFS, OS)",
    family="deep",
    models=("mm_dls",),
    trainer="oncoflow.deep.train_mmdls:MMDLSTask",
    settings="oncoflow.deep.mmdls_settings:MMDLSSettings",
    inherits=("stems", "clinical", "horizons"),
    strata="os_event",
    whole_images=True,
    stages=("lesions", "radiomics", "pet"),
    evaluation=("binary", "multiclass", "survival"),
)
