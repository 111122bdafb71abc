"""New heads on frozen features (oncoflow.segmentation.frozen_head), without nnU-Net."""

from __future__ import annotations

import numpy as np

from oncoflow.metrics.classification import macro_auc
from oncoflow.segmentation.frozen_head import head_probabilities, train_head


def _features(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Pooled vectors of 3 classes whose first two features carry the class."""
    y = rng.choice(3, size=n, p=[0.25, 0.42, 0.33])
    x = rng.normal(size=(n, 16)).astype(np.float32)
    x[:, 0] += 1.5 * y
    x[:, 1] -= 1.0 * (y == 1)
    return x, y


def test_a_head_learns_the_class_and_a_permuted_head_stays_at_chance() -> None:
    rng = np.random.default_rng(0)
    x, y = _features(rng, 90)
    x_new, y_new = _features(rng, 300)
    real = train_head(x, y, 3, hidden=32, dropout=0.3, seed=1)
    assert macro_auc(y_new, head_probabilities(real, x_new)) > 0.75
    aucs = []
    for r in range(5):
        permuted = np.random.default_rng([7, r]).permutation(y)
        head = train_head(x, permuted, 3, hidden=32, dropout=0.3, seed=r)
        probs = head_probabilities(head, x_new)
        assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)
        aucs.append(macro_auc(y_new, probs))
    assert abs(float(np.mean(aucs)) - 0.5) < 0.07


def test_a_refit_head_round_trips_through_its_file(tmp_path) -> None:
    from oncoflow.segmentation.refit import load_refit_head, save_refit_head

    x, y = _features(np.random.default_rng(3), 60)
    head = train_head(x, y, 3, hidden=16, dropout=0.2, seed=0)
    path = tmp_path / "head_refit.pt"
    save_refit_head(path, head, ["a", "b", "c"], training_cases=["c1"], steps=100)
    loaded = load_refit_head(path)
    assert loaded.classes == ["a", "b", "c"]
    assert loaded.mapping is None
    assert np.allclose(head_probabilities(loaded.head, x), head_probabilities(head, x), atol=1e-6)


def test_lesion_descriptor_reads_every_stage_inside_the_lesion() -> None:
    import torch

    from oncoflow.segmentation.multitask import lesion_descriptor

    skips = [torch.zeros(1, 2, 8, 8, 8), torch.zeros(1, 3, 4, 4, 4)]
    skips[0][:, :, :4] = 5.0  # the lesion's half of the finest stage
    prob = torch.zeros(1, 1, 8, 8, 8)
    prob[:, :, :4] = 1.0
    out = lesion_descriptor(skips, prob)
    assert out.shape == (1, 3 * (2 + 3))
    # finest stage: global mean 2.5, lesion mean 5, lesion SD 0
    assert torch.allclose(out[0, :6], torch.tensor([2.5, 2.5, 5.0, 5.0, 0.0, 0.0]), atol=1e-4)


def test_the_contrast_part_cancels_an_offset_of_every_voxel() -> None:
    import torch

    from oncoflow.segmentation.multitask import lesion_descriptor

    skips = [torch.full((1, 2, 8, 8, 8), 1.0)]
    skips[0][:, :, :4] = 5.0  # lesion 5, surrounding organ 1
    prob = torch.zeros(1, 1, 8, 8, 8)
    prob[:, :, :4] = 1.0
    surround = 1.0 - prob
    out = lesion_descriptor(skips, prob, surround)
    assert out.shape == (1, 4 * 2)
    assert torch.allclose(out[0, 6:], torch.tensor([4.0, 4.0]), atol=1e-4)  # 5 - 1
    shifted = lesion_descriptor([skips[0] + 30.0], prob, surround)
    assert torch.allclose(shifted[0, 6:], out[0, 6:], atol=1e-3)  # the offset cancels
    assert not torch.allclose(shifted[0, :6], out[0, :6])  # the other parts move with it


def test_case_features_refuses_offsets_without_a_calibration() -> None:
    import pytest

    from oncoflow.errors import SegmentationError
    from oncoflow.segmentation.frozen_head import case_features

    # the offsets would be ignored: refused before any case is read
    with pytest.raises(SegmentationError, match="without a calibration"):
        case_features(None, [("PM001", [])], offsets={"PM001": 12.0})


def test_features_past_the_layernorm_keep_their_scale() -> None:
    import torch

    from oncoflow.segmentation.multitask import ClassificationHead

    torch.manual_seed(0)
    head = ClassificationHead(8, 3, hidden=16, dropout=0.0, normalized=5).eval()
    x = torch.randn(4, 8)
    scaled_descriptor, scaled_statistics = x.clone(), x.clone()
    scaled_descriptor[:, :5] *= 3.0
    scaled_statistics[:, 5:] *= 3.0
    with torch.no_grad():
        logits = head.classify(x)
        # the normalised part is read up to its per-case scale, the rest as it is
        assert torch.allclose(head.classify(scaled_descriptor), logits, atol=1e-4)
        assert not torch.allclose(head.classify(scaled_statistics), logits, atol=1e-2)
    alone = ClassificationHead(3, 2, hidden=8, dropout=0.0, normalized=0)
    assert isinstance(alone.norm, torch.nn.Identity)


def test_a_statistics_only_head_round_trips_with_its_inputs(tmp_path) -> None:
    from oncoflow.segmentation.refit import fit_head_inputs, load_refit_head, save_refit_head

    rng = np.random.default_rng(5)
    x, y = _features(rng, 60)
    raw = np.concatenate([x, 40.0 + 10.0 * x[:, :3]], axis=1)  # descriptor, then 3 statistics
    _, scaler, inputs = fit_head_inputs(
        raw, ["s"] * 60, harmonize=False, statistics=(2, 3), descriptor=False
    )
    assert inputs.shape == (60, 3)
    assert np.allclose(inputs.mean(axis=0), 0.0, atol=1e-5)
    head = train_head(inputs, y, 3, hidden=16, dropout=0.2, seed=0, normalized=0)
    path = tmp_path / "head_refit.pt"
    save_refit_head(
        path, head, ["a", "b", "c"], training_cases=["c1"], steps=100, statistics=scaler,
        descriptor=False,
    )  # fmt: skip
    loaded = load_refit_head(path)
    assert loaded.descriptor is False
    assert loaded.head.normalized == 0
    assert np.allclose(loaded.inputs(raw), inputs, atol=1e-6)
    assert np.allclose(
        head_probabilities(loaded.head, loaded.inputs(raw)),
        head_probabilities(head, inputs),
        atol=1e-6,
    )
    assert macro_auc(y, head_probabilities(head, inputs)) > 0.75


def test_the_settings_refuse_a_head_that_reads_nothing_or_an_unread_reference() -> None:
    import json

    import pytest

    from oncoflow.errors import SegmentationError
    from oncoflow.segmentation.workflow import NnunetSettings

    block = {
        "dataset_id": 501,
        "dataset_name": "Demo",
        "channels": ["CT"],
        "label": "mask",
        "regions": {"pancreas": [1, 2], "lesion": [2]},
        "classify": "subtype",
        "head_descriptor": False,
    }
    with pytest.raises(SegmentationError, match="head_statistics"):
        NnunetSettings.from_json(json.dumps(block))
    settings = NnunetSettings.from_json(json.dumps({**block, "head_statistics": True}))
    assert settings.statistics == (2, 3)
    # a site mapping of the statistics alone is a head's input too
    mapped = {**block, "head_statistics": True, "harmonize_head": True}
    assert NnunetSettings.from_json(json.dumps(mapped)).harmonize_head is True
    # a reference tissue for statistics the head does not read
    referenced = {**block, "head_descriptor": True, "head_statistics_reference": 1}
    with pytest.raises(SegmentationError, match="head_statistics_reference"):
        NnunetSettings.from_json(json.dumps(referenced))
    on = NnunetSettings.from_json(json.dumps({**referenced, "head_statistics": True}))
    assert on.head_statistics_reference == 1
