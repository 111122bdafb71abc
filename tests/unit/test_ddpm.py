"""lung_synthesis diffusion model: closed-form schedule, anatomy-preserving sampler, overfitting,
resumable training, data round trip and fidelity metrics (all on CPU, tiny volumes)."""

from __future__ import annotations

import math

import nibabel as nib
import numpy as np
import pytest
import torch

from oncoflow.synthesis.data import keep_mask, load_case, restore, write_nifti
from oncoflow.synthesis.diffusion import CosineSchedule, sample
from oncoflow.synthesis.fidelity import patient_fidelity
from oncoflow.synthesis.model import DDPMSettings, build_model, train_ddpm

WINDOW = (-1000.0, 400.0)


def test_cosine_schedule_and_forward_process_match_the_closed_form():
    schedule = CosineSchedule(50)
    f = [math.cos(((t / 50) + 0.008) / 1.008 * math.pi / 2) ** 2 for t in range(51)]
    expected = np.minimum(1 - np.array(f[1:]) / np.array(f[:-1]), 0.999)
    np.testing.assert_allclose(schedule.betas.numpy(), expected, rtol=1e-12)
    np.testing.assert_allclose(schedule.abar.numpy(), np.cumprod(1 - expected), rtol=1e-12)
    # q(x_t | x_0): mean sqrt(abar_t) x0, variance 1 - abar_t (Monte Carlo on a toy tensor)
    x0 = torch.full((200_000,), 0.6, dtype=torch.float64)
    generator = torch.Generator().manual_seed(0)
    for step in (0, 10, 49):
        t = torch.full((1,), step)
        xt = schedule.q_sample(
            x0[None], t, torch.randn(x0.shape, generator=generator, dtype=torch.float64)[None]
        )
        abar = float(schedule.abar[step])
        assert float(xt.mean()) == pytest.approx(math.sqrt(abar) * 0.6, abs=4e-3)
        assert float(xt.var()) == pytest.approx(1 - abar, rel=1e-2, abs=1e-4)
    # q(x_{t-1} | x_t, x_0) against the product of the two Gaussians
    x0, xt = torch.tensor([[0.3]]), torch.tensor([[-0.4]])
    for step in (1, 20, 49):
        t = torch.tensor([step])
        mean, log_var = schedule.posterior(x0.double(), xt.double(), t)
        a, ab_prev = (float(v[step]) for v in (schedule.alphas, schedule.abar_prev))
        precision = 1 / (1 - ab_prev) + a / (1 - a)
        want = (
            math.sqrt(ab_prev) * 0.3 / (1 - ab_prev) + math.sqrt(a) * -0.4 / (1 - a)
        ) / precision
        assert float(mean) == pytest.approx(want, rel=1e-6)
        assert math.exp(float(log_var)) == pytest.approx(1 / precision, rel=1e-9)
    t, eps = torch.tensor([10]), torch.tensor([[-0.4]], dtype=torch.float64)
    x0 = torch.tensor([[0.3]], dtype=torch.float64)
    assert float(schedule.predict_x0(schedule.q_sample(x0, t, eps), t, eps)) == pytest.approx(0.3)


def _ball(size: int = 16) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    zz, yy, xx = torch.meshgrid(*(torch.linspace(-1, 1, size),) * 3, indexing="ij")
    lung = (xx**2 + yy**2 + zz**2) < 0.5
    real = torch.where(lung, -0.7 + 0.2 * torch.sin(4 * xx), 0.3 + 0.1 * yy)[None, None]
    condition = torch.stack([lung.float() * 2 - 1, -torch.ones_like(xx)])[None]
    return real, condition, ~lung[None, None]


@pytest.mark.parametrize("ddim", [None, 10])
def test_anatomy_preserving_sampler_keeps_the_body_and_generates_the_lung(ddim):
    real, condition, keep = _ball()
    model = build_model(
        DDPMSettings(size=(16, 16, 16), steps=30, channel_mult=(1, 2), attention_levels=(1,))
    )
    schedule = CosineSchedule(30)
    generator = torch.Generator().manual_seed(0)
    out = sample(
        model, schedule, condition, real=real, keep=keep, ddim_steps=ddim, generator=generator
    )
    assert torch.equal(out[keep], real[keep])
    assert (out[~keep] - real[~keep]).abs().mean() > 0.1
    free = sample(model, schedule, condition, ddim_steps=ddim, generator=generator)
    assert (free[keep] - real[keep]).abs().mean() > 0.1


def test_tiny_model_overfits_one_volume():
    real, condition, _ = _ball(8)
    settings = DDPMSettings.from_mapping(
        {"size": [8, 8, 8], "steps": 50, "base_channels": 8, "channel_mult": [1, 2],
         "attention_levels": [1], "lr": 3e-3, "batch_size": 4, "train_steps": 300,
         "log_every": 10, "ema_start": 0, "loss": "l2"}
    )  # fmt: skip
    _, rows = train_ddpm(real, condition, settings, progress=False)
    losses = [r["loss"] for r in rows]
    first, last = np.mean(losses[:2]), np.mean(losses[-5:])
    assert first / last >= 10, (first, last)


def test_killed_training_resumes_to_the_same_weights(tmp_path):
    real, condition, _ = _ball(8)
    settings = DDPMSettings.from_mapping(
        {"size": [8, 8, 8], "steps": 20, "channel_mult": [1, 2], "attention_levels": [1],
         "train_steps": 12, "checkpoint_every": 4, "log_every": 2, "ema_start": 2}
    )  # fmt: skip
    whole, rows = train_ddpm(real, condition, settings, resume=tmp_path / "a.pt", progress=False)
    train_ddpm(real, condition, settings, resume=tmp_path / "b.pt", progress=False, stop_after=6)
    assert torch.load(tmp_path / "b.pt", weights_only=False)["step"] == 4  # last checkpoint
    resumed, rows_b = train_ddpm(
        real, condition, settings, resume=tmp_path / "b.pt", progress=False
    )
    for (name, a), b in zip(whole.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    assert [(r["step"], r["loss"]) for r in rows_b] == [(r["step"], r["loss"]) for r in rows]
    # other settings never resume from this file
    other = DDPMSettings.from_mapping({**settings.as_dict(), "lr": 1e-3})
    _, rows_c = train_ddpm(
        real, condition, other, resume=tmp_path / "b.pt", progress=False, stop_after=2
    )
    assert [r["step"] for r in rows_c] == [2]


def test_case_round_trip_keeps_the_real_body_and_geometry(tmp_path):
    rng = np.random.default_rng(0)
    hu = rng.normal(-200, 300, (20, 18, 16)).astype(np.float32)
    labels = np.zeros(hu.shape, np.int16)
    labels[4:14, 4:12, 3:12] = 1
    labels[7:9, 6:8, 5:7] = 2
    affine = np.diag([0.9, 0.8, 2.0, 1.0])
    affine[:3, 3] = (-40, 12, 100)
    nib.save(nib.Nifti1Image(hu, affine), tmp_path / "CT.nii.gz")
    nib.save(nib.Nifti1Image(labels, affine), tmp_path / "mask.nii.gz")
    case = load_case(
        "P1", tmp_path / "CT.nii.gz", tmp_path / "mask.nii.gz", size=(8, 8, 8), window=WINDOW
    )
    assert case.image.shape == (1, 8, 8, 8)
    assert case.condition.shape == (2, 8, 8, 8)
    assert (case.condition[1] > 0).any()  # the 2x2x2 nodule survives the 2.5x down-sampling
    assert keep_mask(case).shape == (1, 8, 8, 8)
    volume = restore(torch.zeros(1, 8, 8, 8), case, WINDOW)
    outside = labels == 0
    np.testing.assert_array_equal(volume[outside], hu[outside])
    np.testing.assert_allclose(volume[~outside], -300.0)  # 0 in [-1, 1] = window centre
    out = write_nifti(volume, case, tmp_path / "sample.nii.gz")
    written = nib.load(out)
    np.testing.assert_allclose(written.affine, affine)
    np.testing.assert_allclose(np.asarray(written.dataobj), volume)


def test_fidelity_metrics():
    rng = np.random.default_rng(1)
    real = rng.normal(-700, 100, (24, 24, 24))
    labels = np.zeros(real.shape, np.int16)
    labels[4:20, 4:20, 4:20] = 1
    same = patient_fidelity(real, real, labels, WINDOW)
    assert same["mae_hu"] == 0
    assert same["hu_wasserstein"] == 0
    assert same["ssim"] == pytest.approx(1.0)
    assert math.isinf(same["psnr_db"])
    shifted = patient_fidelity(real + 50, real, labels, WINDOW)
    assert shifted["mae_hu"] == pytest.approx(50)
    assert shifted["hu_wasserstein"] == pytest.approx(50)
    assert shifted["psnr_db"] == pytest.approx(20 * math.log10(1400 / 50))
    assert shifted["ssim"] < 1
