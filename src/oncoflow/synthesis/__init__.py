"""Study ``lung_synthesis``: a mask-conditioned 3D diffusion model for synthetic lung CT.

Modules: ``diffusion`` (schedule, sampler), ``unet`` (noise predictor), ``data`` (CT + masks to
tensors and back), ``model`` (training), ``fidelity`` (metrics), ``workflow`` (what the rules
call).
"""
