"""Recipe ``liver_response``: the relation-network ablation ladder on multi-sequence MRI (seed 003).

Reads the lesion crops of three MRI sequences before and after treatment, AFP/DCP and lesion
volumes; predicts response (binary). Every rung of the ladder is trained and compared; the
study's model (``relation_net``) ends it. Trainer: :class:`oncoflow.deep.train_liver.LiverTask`.
"""

from oncoflow.studies.recipe import Recipe

RECIPE = Recipe(
    name="liver_response",
    summary="relation network over pre/post multi-sequence MRI, with its ablation ladder",
    family="deep",
    models=("relation_net", "resnet_single", "pre_post", "single_temporal", "multi_sequence"),
    ladder=("resnet_single", "pre_post", "single_temporal", "multi_sequence", "relation_net"),
    trainer="oncoflow.deep.train_liver:LiverTask",
    settings="oncoflow.deep.train_liver:LiverSettings",
    model_key="rung",
    stages=("lesions",),
    evaluation=("binary",),
    applicable=True,
    timepoints=(0, 1),
)
