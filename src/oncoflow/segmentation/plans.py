"""Derive an nnU-Net plans variant from the planner's plans (nnU-Net's documented way).

nnU-Net lets a user copy a plans file under a new ``plans_name`` and edit the configuration
(batch size, network width and depth) without re-preprocessing, as long as the
``data_identifier`` (which names the preprocessed folder) is left unchanged. We do that in a rule
instead of by hand:

- production: the ResEncM plans as planned (no overrides), plus the ``oncoflow`` block;
- CPU demo: batch 2, features ``min(base * 2**s, max)`` per stage ``s``, one residual block per
  encoder stage and one conv per decoder stage, so one 10-iteration epoch takes seconds on CPU.

``normalization`` is the one override that changes the preprocessed data: nnU-Net's scheme for
every channel (e.g. ``ZScoreNormalization``, each case by its own mean and SD, in which a
scanner's gain and offset cancel, instead of ``CTNormalization``'s dataset-wide HU statistics).
The derived plans then get their own ``data_identifier`` (``<planned>_<scheme>``) and are
preprocessed again (:func:`oncoflow.segmentation.workflow.plan`).

The ``oncoflow`` block (ignored by nnU-Net, read by :mod:`oncoflow.segmentation.nnunet_ext`)
carries the classification head (class names, hidden width, dropout), so nnU-Net's predictor
rebuilds the identical network at inference time.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from oncoflow.errors import SegmentationError

ARCH_OVERRIDES = ("base_features", "max_features", "blocks_per_stage", "decoder_convs")
"""Architecture keys of the ``overrides`` mapping (others: ``batch_size``)."""


def stage_features(n_stages: int, base: int, maximum: int) -> list[int]:
    """Features per stage ``min(base * 2**s, maximum)`` for ``s = 0 .. n_stages - 1``."""
    return [min(base * 2**s, maximum) for s in range(n_stages)]


def derive_plans(
    plans: Mapping[str, Any],
    *,
    name: str,
    configuration: str,
    overrides: Mapping[str, Any] | None = None,
    oncoflow: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A copy of ``plans`` named ``name`` with ``configuration`` edited by ``overrides``.

    Args:
        plans: The planner's plans (e.g. ``nnUNetResEncUNetMPlans.json``).
        name: New ``plans_name`` (file ``<name>.json`` next to the source).
        configuration: Configuration to edit (e.g. ``3d_fullres``); the others are kept.
        overrides: ``batch_size``, ``base_features``, ``max_features``, ``blocks_per_stage``,
            ``decoder_convs``, ``normalization`` (each optional; nothing = the plans as planned).
        oncoflow: Head settings stored under the ``oncoflow`` key.

    Returns:
        The new plans dictionary (the source is not modified).

    Raises:
        SegmentationError: Unknown configuration or override key.
    """
    out = copy.deepcopy(dict(plans))
    configs = out.get("configurations", {})
    if configuration not in configs:
        names = ", ".join(configs)
        msg = f"plans {plans.get('plans_name')}: no configuration {configuration!r} ({names})"
        raise SegmentationError(msg)
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - {"batch_size", "normalization", *ARCH_OVERRIDES})
    if unknown:
        msg = f"unknown nnU-Net plans override(s): {', '.join(unknown)}"
        raise SegmentationError(msg)
    config = configs[configuration]
    if overrides.get("batch_size") is not None:
        config["batch_size"] = int(overrides["batch_size"])
    arch = config["architecture"]["arch_kwargs"]
    n_stages = int(arch["n_stages"])
    if overrides.get("base_features") is not None:
        maximum = int(overrides.get("max_features") or max(arch["features_per_stage"]))
        arch["features_per_stage"] = stage_features(
            n_stages, int(overrides["base_features"]), maximum
        )
    if overrides.get("blocks_per_stage") is not None:
        key = "n_blocks_per_stage" if "n_blocks_per_stage" in arch else "n_conv_per_stage"
        arch[key] = [int(overrides["blocks_per_stage"])] * n_stages
    if overrides.get("decoder_convs") is not None:
        arch["n_conv_per_stage_decoder"] = [int(overrides["decoder_convs"])] * (n_stages - 1)
    scheme = overrides.get("normalization")
    if scheme and list(config["normalization_schemes"]) != [scheme] * len(
        config["normalization_schemes"]
    ):
        config["normalization_schemes"] = [str(scheme)] * len(config["normalization_schemes"])
        config["data_identifier"] = f"{config['data_identifier']}_{scheme}"
    out["plans_name"] = name
    if oncoflow is not None:
        out["oncoflow"] = copy.deepcopy(dict(oncoflow))
    return out
