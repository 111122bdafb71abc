"""Recipe ``pancreas_multitask``: nnU-Net ResEncM with a subtype head (seed 001).

Reads the CT and its pancreas / lesion mask; nnU-Net plans, trains and predicts the segmentation
and a classification head predicts the lesion subtype (multi-class) from the lesion ROI. The
segmentation family: :mod:`oncoflow.segmentation`.
"""

from oncoflow.studies.recipe import Recipe

RECIPE = Recipe(
    name="pancreas_multitask",
    summary="multitask nnU-Net: pancreas and lesion segmentation + lesion subtype",
    family="segmentation",
    models=("nnunet_multitask",),
    reads=("images", "outcomes"),
    evaluation=("segmentation", "multiclass"),
    # without clinical columns: the lesion's volume, and the lesion statistics a reader measures
    # on the mask (mean / SD inside, elongation): does the head add anything to them?
    baselines=("baseline_size", "baseline_lesion"),
    applicable=True,
)
