"""Recipe ``nsclc_mmdls``: MM-DLS, multi-task CT + PET network for NSCLC (seed 004).

Reads CT and PET lesion crops, the converted CT (the lesion-core statistics), the radiomics and
PET feature tables and the clinical columns; predicts histology (binary), stage (multi-class),
DFS and OS (survival at ``evaluate.horizons_days``). The inner split is stratified by
``os_event``. Its input ablation (tabular inputs only, image vector only, both;
:data:`oncoflow.deep.mmdls_heads.VARIANTS`) is trained and compared like the liver ladder.
Trainer: :class:`oncoflow.deep.train_mmdls.MMDLSTask`.
"""

from oncoflow.studies.recipe import Recipe

RECIPE = Recipe(
    name="nsclc_mmdls",
    summary="MM-DLS: multi-task CT + PET network (histology, stage, DFS, OS)",
    family="deep",
    models=("mm_dls", "mm_dls_tabular", "mm_dls_image"),
    ladder=("mm_dls_tabular", "mm_dls_image", "mm_dls"),
    trainer="oncoflow.deep.train_mmdls:MMDLSTask",
    settings="oncoflow.deep.mmdls_settings:MMDLSSettings",
    model_key="variant",
    inherits=("stems", "clinical", "horizons"),
    strata="os_event",
    whole_images=True,
    stages=("lesions", "radiomics", "pet"),
    evaluation=("binary", "multiclass", "survival"),
    applicable=True,
)
