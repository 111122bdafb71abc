"""Recipe ``lung_synthesis``: mask-conditioned 3D diffusion model of lung CT (seed 002c).

Reads the CT and its lung / lesion masks; the DDPM learns CT given the masks and samples a
synthetic CT for every patient's masks, scored on the test patients. The synthesis family:
:mod:`oncoflow.synthesis`.
"""

from oncoflow.studies.recipe import Recipe

RECIPE = Recipe(
    name="lung_synthesis",
    summary="Lung-DDPM: mask-conditioned 3D diffusion model (synthetic CT)",
    family="synthesis",
    models=("lung_ddpm",),
    reads=("images",),
    evaluation=("synthesis",),
    applicable=True,
)
