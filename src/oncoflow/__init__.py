"""oncoflow: multimodal oncology outcome prediction as a reproducible Snakemake workflow.

The library is organised by workflow stage (``demo``, ``convert``, ``validate``, ...); every
``scripts/<rule>.py`` parses its arguments and calls into one of these subpackages.
"""

__version__ = "0.1.0"

STUDIES: tuple[str, ...] = (
    "pancreas_progression",
    "pancreas_multitask",
    "net_survival",
    "lung_synthesis",
    "liver_response",
    "nsclc_mmdls",
)
"""The six study names, in the order of ``config.yaml``."""
