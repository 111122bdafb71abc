"""Lung + lesion segmentor of MM-DLS (oncoflow.models.segmentor)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch

from oncoflow.models.segmentor import (
    LungLesionSegmentor,
    dice_score,
    segmentation_loss,
    soft_dice_loss,
)


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    # Tiny convolutions on a shared 2-core runner are many times faster on one thread.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def model() -> LungLesionSegmentor:
    torch.manual_seed(0)
    return LungLesionSegmentor(in_channels=1, width=8, depth=3, heads=4)


def test_output_shapes(model: LungLesionSegmentor) -> None:
    x = torch.randn(2, 1, 64, 64)
    out = model(x)
    assert set(out) == {"lung", "lesion", "features"}
    assert out["lung"].shape == (2, 1, 64, 64)
    assert out["lesion"].shape == (2, 1, 64, 64)
    assert out["features"].shape == (2, 32, 16, 16)
    embedding = model.encode(x)
    assert embedding.shape == (2, model.embedding_dim) == (2, 32)
    torch.testing.assert_close(embedding, out["features"].mean(dim=(2, 3)))


def test_default_sizes_and_non_square_input() -> None:
    torch.manual_seed(0)
    net = LungLesionSegmentor(in_channels=2)
    out = net(torch.randn(1, 2, 64, 48))
    assert out["lesion"].shape == (1, 1, 64, 48)
    assert out["features"].shape == (1, 64, 16, 12)


def test_bad_inputs(model: LungLesionSegmentor) -> None:
    with pytest.raises(ValueError, match="divisible"):
        model(torch.randn(1, 1, 62, 64))
    with pytest.raises(ValueError, match="expected input"):
        model(torch.randn(1, 3, 64, 64))
    with pytest.raises(ValueError, match="heads"):
        LungLesionSegmentor(width=6, depth=1, heads=4)


@pytest.mark.parametrize("branch", ["lung", "lesion"])
def test_gradient_reaches_shared_encoder_from_each_head(
    model: LungLesionSegmentor, branch: str
) -> None:
    out = model(torch.randn(2, 1, 32, 32))
    out[branch].sum().backward()
    for stage in model.encoder:
        grads = [p.grad for p in stage.parameters()]
        assert all(g is not None for g in grads)
        assert sum(float(g.abs().sum()) for g in grads) > 0
    other = "lesion" if branch == "lung" else "lung"
    # The lung decoder's bottleneck feeds the lesion head through the cross-attention, never
    # the other way round.
    lung_block_grad = model.decoders["lung"].bottleneck[0].weight.grad
    assert lung_block_grad is not None
    assert float(lung_block_grad.abs().sum()) > 0
    other_head = model.decoders[other].head.weight.grad
    assert other_head is None


def test_attention_is_cross_attention(model: LungLesionSegmentor) -> None:
    model.eval()
    seen: dict[str, torch.Tensor] = {}

    def capture(_module, args, _kwargs, _output):  # type: ignore[no-untyped-def]
        seen["query"], seen["key"], seen["value"] = args[:3]

    handle = model.cross_attention.attention.register_forward_hook(capture, with_kwargs=True)
    model(torch.randn(1, 1, 32, 32))
    handle.remove()
    assert seen["query"].shape == seen["key"].shape == (1, 8 * 8, 32)
    assert seen["key"] is seen["value"]
    assert not torch.allclose(seen["query"], seen["key"])

    # Perturbing the lung branch features changes the lesion output (and the lung output);
    # perturbing the lesion branch leaves the lung output untouched.
    x = torch.randn(1, 1, 32, 32)
    with torch.no_grad():
        base = model(x)

        def shift(_module, _args, output):  # type: ignore[no-untyped-def]
            return output + torch.randn_like(output)

        for branch in ("lung", "lesion"):
            handle = model.decoders[branch].bottleneck.register_forward_hook(shift)
            changed = model(x)
            handle.remove()
            other = "lesion" if branch == "lung" else "lung"
            assert (changed[branch] - base[branch]).abs().max() > 1e-3
            if branch == "lung":
                assert (changed["lesion"] - base["lesion"]).abs().max() > 1e-3
            else:
                torch.testing.assert_close(changed[other], base[other])


def test_dice_score_cases() -> None:
    target = torch.zeros(3, 1, 8, 8)
    target[0, 0, 2:5, 2:5] = 1
    target[1, 0, 0:2, 0:2] = 1
    logits = torch.full_like(target, -10.0)
    logits[0, 0, 2:5, 2:5] = 10.0  # perfect
    logits[1, 0, 6:8, 6:8] = 10.0  # disjoint
    # sample 2: both empty
    torch.testing.assert_close(dice_score(logits, target), torch.tensor([1.0, 0.0, 1.0]))
    half = logits.clone()
    half[0, 0, 5, 2:5] = 10.0  # 12 predicted, 9 true, 9 overlap -> 18/21
    assert float(dice_score(half, target)[0]) == pytest.approx(18 / 21)


def test_soft_dice_loss_and_segmentation_loss() -> None:
    target = torch.zeros(2, 1, 8, 8)
    target[:, :, 2:6, 2:6] = 1
    good = target * 40 - 20
    assert float(soft_dice_loss(good, target)) < 1e-3
    assert float(soft_dice_loss(-good, target)) > 0.9
    outputs = {"lung": good, "lesion": -good}
    loss = segmentation_loss(outputs, target, target)
    expected = (
        soft_dice_loss(good, target)
        + soft_dice_loss(-good, target)
        + torch.nn.functional.binary_cross_entropy_with_logits(good, target)
        + torch.nn.functional.binary_cross_entropy_with_logits(-good, target)
    )
    torch.testing.assert_close(loss, expected)
    with pytest.raises(ValueError, match="differ in shape"):
        soft_dice_loss(good, target[:, 0])


def _synthetic(n: int, size: int, seed: int) -> tuple[torch.Tensor, ...]:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    images, lungs, lesions = [], [], []
    for _ in range(n):
        cy, cx = rng.uniform(0.4, 0.6, size=2) * size
        ay, ax = rng.uniform(0.28, 0.4, size=2) * size
        lung = ((yy - cy) / ay) ** 2 + ((xx - cx) / ax) ** 2 <= 1
        radius = rng.uniform(0.08, 0.13) * size
        # Disc centre well inside the ellipse so the lesion lies in the lung.
        angle = rng.uniform(0, 2 * np.pi)
        frac = rng.uniform(0, 0.35)
        ly, lx = cy + frac * ay * np.sin(angle), cx + frac * ax * np.cos(angle)
        lesion = (yy - ly) ** 2 + (xx - lx) ** 2 <= radius**2
        image = 0.5 * lung + 0.5 * lesion + rng.normal(0, 0.1, size=(size, size))
        images.append(image)
        lungs.append(lung)
        lesions.append(lesion)

    def stack(a: list[np.ndarray]) -> torch.Tensor:
        return torch.from_numpy(np.stack(a).astype(np.float32))[:, None]

    return stack(images), stack(lungs), stack(lesions)


def test_overfits_tiny_synthetic_set() -> None:
    torch.manual_seed(0)
    images, lungs, lesions = _synthetic(8, 32, seed=0)
    assert bool((lesions <= lungs).all())
    net = LungLesionSegmentor(in_channels=1, width=8, depth=3, heads=4)
    optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)
    net.train()
    for _ in range(80):  # seeds 0-9: lung Dice >= 0.95, lesion Dice >= 0.90
        optimizer.zero_grad()
        loss = segmentation_loss(net(images), lungs, lesions)
        loss.backward()
        optimizer.step()
    net.eval()
    with torch.no_grad():
        out = net(images)
    lung_dice = float(dice_score(out["lung"], lungs).mean())
    lesion_dice = float(dice_score(out["lesion"], lesions).mean())
    assert lung_dice > 0.8
    assert lesion_dice > 0.7
