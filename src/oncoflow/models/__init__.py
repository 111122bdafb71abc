"""The networks of every study, each registered by name (:mod:`oncoflow.models.registry`).

* :mod:`.backbones` - 2D slice encoders (basic-block ResNets, a small conv encoder);
* :mod:`.cnn_lstm` - pancreas_progression: lesion-slice CNN extractor + LSTM over time points;
* :mod:`.liver` - liver_response: the four rungs of the relation-network ladder;
* :mod:`.mm_dls` - nsclc_mmdls: the MM-DLS multitask fusion network;
* :mod:`.unet3d` - the DDPM's 3D U-Net noise predictor (lung_synthesis).

Build a network with ``create_model(name, **settings)``; the trainers in :mod:`oncoflow.deep` and
:mod:`oncoflow.synthesis` never call a model class directly. A module also holds the few functions
that belong to its network alone (its loss, the MM-DLS survival head's Breslow estimate, ...).
"""

from __future__ import annotations

from oncoflow.models.registry import create_model, list_models, register_model

__all__ = ["create_model", "list_models", "register_model"]
