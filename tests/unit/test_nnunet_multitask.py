"""Multitask network: one encoder pass gives both outputs; case class = mean over all patches."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from dynamic_network_architectures.architectures.unet import ResidualEncoderUNet
from torch import nn

from oncoflow.errors import SegmentationError
from oncoflow.metrics.classification import safe_auc
from oncoflow.segmentation.multitask import (
    ClassificationHead,
    MultitaskNetwork,
    aggregate_patches,
    class_weights,
    classification_weight,
    selection_dice_weight,
)
from oncoflow.segmentation.plans import derive_plans, stage_features


def _base(deep_supervision: bool = True) -> ResidualEncoderUNet:
    return ResidualEncoderUNet(
        input_channels=1,
        n_stages=3,
        features_per_stage=[4, 8, 16],
        conv_op=nn.Conv3d,
        kernel_sizes=3,
        strides=[1, 2, 2],
        n_blocks_per_stage=1,
        num_classes=2,
        n_conv_per_stage_decoder=1,
        norm_op=nn.InstanceNorm3d,
        nonlin=nn.LeakyReLU,
        deep_supervision=deep_supervision,
    )


class _CountingEncoder(nn.Module):
    def __init__(self, encoder: nn.Module):
        super().__init__()
        self.inner = encoder
        self.output_channels = encoder.output_channels
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return self.inner(x)


def test_one_forward_call_gives_segmentation_and_class_from_one_encoder_pass():
    torch.manual_seed(0)
    base = _base()
    base.encoder = _CountingEncoder(base.encoder)  # counts real encoder executions
    net = MultitaskNetwork(base, n_classes=3, hidden=8)
    x = torch.randn(2, 1, 16, 16, 16)
    segmentation, logits = net.forward_both(x)
    assert base.encoder.calls == 1
    assert isinstance(segmentation, list)
    assert segmentation[0].shape == (2, 2, 16, 16, 16)
    assert logits.shape == (2, 3)
    # the head sees exactly the bottleneck of that pass: same logits from the skip features
    with torch.no_grad():
        net.eval()
        _seg_eval, logits_eval = net.forward_both(x)
        skips = base.encoder(x)
        np.testing.assert_allclose(net.head(skips[-1]).numpy(), logits_eval.numpy(), rtol=1e-5)
    # forward() (what nnU-Net's predictor calls) is one encoder pass as well
    before = base.encoder.calls
    net(x)
    assert base.encoder.calls == before + 1


def test_class_probabilities_aggregate_every_patch_not_the_last():
    torch.manual_seed(1)
    net = MultitaskNetwork(_base(deep_supervision=False), n_classes=3, hidden=8).eval()
    patches = [torch.randn(1, 1, 16, 16, 16) * (1 + i) for i in range(5)]
    with torch.no_grad(), net.collecting() as recorded:
        for patch in patches:  # e.g. the tiles of one sliding window
            net(patch)
    assert len(recorded) == 5
    with torch.no_grad():
        each = [torch.softmax(net.forward_both(p)[1], 1)[0].numpy() for p in patches]
    aggregated = aggregate_patches(recorded)
    np.testing.assert_allclose(aggregated, np.mean(each, axis=0), rtol=1e-6)
    assert not np.allclose(aggregated, each[-1])  # the seed read the last tile only
    with torch.no_grad():
        net(patches[0])  # outside the block nothing is recorded
    assert len(recorded) == 5
    with pytest.raises(ValueError, match="no patch"):
        aggregate_patches([])


def test_batches_of_patches_count_each_patch():
    probs = [torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([[1.0, 0.0]])]
    np.testing.assert_allclose(aggregate_patches(probs), [2 / 3, 1 / 3])


def test_schedules_and_weights():
    assert classification_weight(19, warmup=20, weight=0.1) == 0.0
    assert classification_weight(20, warmup=20, weight=0.1) == 0.1
    assert selection_dice_weight(5, warmup=20, ramp=30) == pytest.approx(0.9)
    assert selection_dice_weight(35, warmup=20, ramp=30) == pytest.approx(0.7)
    assert selection_dice_weight(80, warmup=20, ramp=30) == pytest.approx(0.5)
    np.testing.assert_allclose(class_weights([62, 106, 84]), 252 / (3 * np.array([62, 106, 84])))


def test_derived_plans_keep_data_identifier_and_edit_one_configuration():
    plans = {
        "plans_name": "nnUNetResEncUNetMPlans",
        "configurations": {
            "3d_fullres": {
                "data_identifier": "nnUNetPlans_3d_fullres",
                "batch_size": 12,
                "architecture": {
                    "arch_kwargs": {
                        "n_stages": 5,
                        "features_per_stage": [32, 64, 128, 256, 320],
                        "n_blocks_per_stage": [1, 3, 4, 6, 6],
                        "n_conv_per_stage_decoder": [1, 1, 1, 1],
                    }
                },
            },
            "2d": {"batch_size": 50},
        },
    }
    derived = derive_plans(
        plans,
        name="oncoflowCPUPlans",
        configuration="3d_fullres",
        overrides={"batch_size": 2, "base_features": 8, "max_features": 64, "blocks_per_stage": 1},
        oncoflow={"head": {"classes": ["0", "1", "2"]}},
    )
    config = derived["configurations"]["3d_fullres"]
    assert derived["plans_name"] == "oncoflowCPUPlans"
    assert config["data_identifier"] == "nnUNetPlans_3d_fullres"
    assert config["batch_size"] == 2
    assert config["architecture"]["arch_kwargs"]["features_per_stage"] == [8, 16, 32, 64, 64]
    assert config["architecture"]["arch_kwargs"]["n_blocks_per_stage"] == [1] * 5
    assert derived["configurations"]["2d"] == {"batch_size": 50}
    assert plans["configurations"]["3d_fullres"]["batch_size"] == 12  # source untouched
    assert derived["oncoflow"]["head"]["classes"] == ["0", "1", "2"]
    assert stage_features(3, 16, 32) == [16, 32, 32]
    # another normalisation: the scheme of every channel and a data identifier of its own
    plans["configurations"]["3d_fullres"]["normalization_schemes"] = ["CTNormalization"] * 2
    zscore = derive_plans(
        plans,
        name="z",
        configuration="3d_fullres",
        overrides={"normalization": "ZScoreNormalization"},
    )["configurations"]["3d_fullres"]
    assert zscore["normalization_schemes"] == ["ZScoreNormalization"] * 2
    assert zscore["data_identifier"] == "nnUNetPlans_3d_fullres_ZScoreNormalization"
    same = derive_plans(
        plans, name="c", configuration="3d_fullres", overrides={"normalization": "CTNormalization"}
    )["configurations"]["3d_fullres"]
    assert same["data_identifier"] == "nnUNetPlans_3d_fullres"  # as planned: no re-preprocessing
    with pytest.raises(SegmentationError, match="unknown nnU-Net plans override"):
        derive_plans(plans, name="x", configuration="3d_fullres", overrides={"depth": 3})
    with pytest.raises(SegmentationError, match="no configuration '3d_lowres'"):
        derive_plans(plans, name="x", configuration="3d_lowres")


def test_roi_pooling_weights_the_bottleneck_by_the_lesion_probability():
    torch.manual_seed(2)
    net = MultitaskNetwork(_base(deep_supervision=False), n_classes=3, hidden=8, pooling="roi")
    net.eval()
    x = torch.randn(2, 1, 16, 16, 16)
    features = net.encoder(x)[-1]
    roi = torch.zeros(2, 1, *features.shape[2:])
    roi[:, :, 0, 0, 0] = 1.0  # all weight on one bottleneck voxel
    with torch.no_grad():
        logits = net.head(features, roi)
        expected = torch.cat([features.flatten(2).mean(2), features[:, :, 0, 0, 0]], dim=1)
        manual = net.head.mlp(net.head.norm(expected))
    np.testing.assert_allclose(logits.numpy(), manual.numpy(), rtol=1e-4, atol=1e-5)
    _, both = net.forward_both(x)  # the ROI comes from the same pass's segmentation
    assert both.shape == (2, 3)
    with pytest.raises(ValueError, match="unknown head pooling"):
        MultitaskNetwork(_base(), n_classes=3, pooling="max")


def _lesion_batch(gen: torch.Generator, n: int, size: int = 4, signal: float = 1.0):
    """Bottleneck features of noise whose two classes differ only inside a 4-voxel lesion."""
    features = torch.randn(n, 16, size, size, size, generator=gen)
    labels = torch.randint(0, 2, (n,), generator=gen)
    roi = torch.zeros(n, 1, size, size, size)
    for i in range(n):
        z, y, x = torch.randint(0, size - 1, (3,), generator=gen).tolist()
        roi[i, 0, z : z + 2, y : y + 2, x] = 1.0
        inside = roi[i, 0] > 0
        features[i, :4][:, inside] += signal if labels[i] == 1 else -signal
    return features, roi, labels


def test_the_head_given_the_true_lesion_separates_classes_that_differ_only_inside_it():
    """Teacher forcing's premise: fed the true lesion ROI, the head learns in one epoch what a
    head pooling the whole patch learns slowly (the lesion is 4 of 64 bottleneck voxels)."""
    test = _lesion_batch(torch.Generator().manual_seed(2), 200)
    aucs = {}
    for pooling in ("roi", "mean"):
        torch.manual_seed(0)
        head = ClassificationHead(16, 2, hidden=32, dropout=0.0, pooling=pooling)
        optimizer = torch.optim.Adam(head.parameters(), lr=3e-3)
        gen = torch.Generator().manual_seed(1)
        for _ in range(10):  # one epoch of 10 batches
            features, roi, labels = _lesion_batch(gen, 32)
            loss = nn.functional.cross_entropy(
                head(features, roi if pooling == "roi" else None), labels
            )
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            logits = head(test[0], test[1] if pooling == "roi" else None)
        aucs[pooling] = safe_auc(test[2].numpy(), torch.softmax(logits, 1)[:, 1].numpy())
    assert aucs["roi"] >= 0.95
    assert aucs["roi"] - aucs["mean"] >= 0.1


def test_teacher_forcing_pools_over_the_true_lesion_of_the_target():
    torch.manual_seed(3)
    net = MultitaskNetwork(_base(deep_supervision=False), n_classes=3, hidden=8, pooling="roi")
    net.eval()
    x = torch.randn(2, 1, 16, 16, 16)
    target = torch.zeros(2, 2, 16, 16, 16)  # region training: whole organ, lesion
    target[:, 1, :4, :4, :4] = 1.0  # the lesion fills bottleneck voxel (0, 0, 0) exactly
    with torch.no_grad():
        _, forced = net.forward_both(x, [target])
        features = net.encoder(x)[-1]
        expected = torch.cat([features.flatten(2).mean(2), features[:, :, 0, 0, 0]], dim=1)
        manual = net.head.mlp(net.head.norm(expected))
        _, own = net.forward_both(x)  # without a target: the network's own lesion probability
    np.testing.assert_allclose(forced.numpy(), manual.numpy(), rtol=1e-4, atol=1e-5)
    assert not torch.allclose(forced, own)
    labels = torch.zeros(2, 1, 16, 16, 16)
    labels[:, :, :4, :4, :4] = 2  # label training: the last of 3 outputs is the lesion
    net.sigmoid = False
    region = net.innermost_region([labels], 3)
    assert region.shape == (2, 1, 16, 16, 16)
    assert region.sum() == 2 * 4**3


def test_features_with_the_contrast_part_and_the_surrounding_organ():
    torch.manual_seed(4)
    net = MultitaskNetwork(_base(deep_supervision=False), n_classes=3, hidden=8, pooling="roi")
    net.eval()
    x = torch.randn(1, 1, 16, 16, 16)
    with torch.no_grad(), net.collecting_features() as plain:
        net(x)
    with torch.no_grad(), net.collecting_features(contrast=True) as contrasted:
        net(x)
    assert plain[0].shape == (1, 3 * (4 + 8 + 16))
    assert contrasted[0].shape == (1, 4 * (4 + 8 + 16))
    assert net._pooled is None  # nothing recorded outside the block
    assert net._contrast is False
    # region outputs (sigmoid, outermost first): organ minus lesion, never negative
    full = torch.tensor([2.0, -1.0]).view(1, 2, 1, 1, 1).expand(1, 2, 2, 2, 2)
    lesion = torch.sigmoid(full[:, 1:])
    surround = net.surround_probability(full, lesion)
    assert torch.allclose(
        surround, torch.sigmoid(torch.tensor(2.0)) - torch.sigmoid(torch.tensor(-1.0))
    )
    assert net.surround_probability(full[:, :1], lesion) is None  # one structure only
    # label outputs (softmax): the labels between background and the lesion
    net.sigmoid = False
    logits = torch.randn(1, 3, 2, 2, 2)
    expected = torch.softmax(logits, 1)[:, 1:2]
    assert torch.allclose(net.surround_probability(logits, expected), expected)
    assert net.surround_probability(logits[:, :2], expected) is None
