"""CPU precision of the multitask nnU-Net (oncoflow.segmentation.precision)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from oncoflow.segmentation.precision import as_float, cpu_autocast, cpu_bf16, native_bf16


def test_precision_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    assert cpu_bf16("bf16") is True
    assert cpu_bf16("fp32") is False
    with pytest.raises(ValueError, match="cpu_precision must be one of fp32, bf16, auto"):
        cpu_bf16("fp16")
    # auto: bfloat16 on a CPU with AVX512-BF16 or AMX tiles, float32 on one with neither
    for avx512, amx, expected in ((False, False, False), (True, False, True), (False, True, True)):
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda v=avx512: v)
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda v=amx: v)
        native_bf16.cache_clear()
        assert cpu_bf16("auto") is expected
    native_bf16.cache_clear()


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv3d(1, 8, 3, padding=1),
        nn.InstanceNorm3d(8, affine=True),
        nn.LeakyReLU(),
        nn.Conv3d(8, 3, 1),
    )


def test_bfloat16_forward_in_channels_last_matches_float32() -> None:
    x = torch.randn(2, 1, 8, 12, 16)
    net = _net()
    with torch.no_grad(), cpu_autocast(False):
        reference = net(x)
    assert reference.dtype == torch.float32
    net.to(memory_format=torch.channels_last_3d)
    with torch.no_grad(), cpu_autocast(True):
        low = net(x.contiguous(memory_format=torch.channels_last_3d))
    assert low.dtype == torch.bfloat16
    # bfloat16 keeps 8 mantissa bits: relative error ~ 2^-8 per operation
    assert torch.allclose(as_float(low), reference, rtol=0.05, atol=0.05)
    assert (as_float(low).argmax(1) == reference.argmax(1)).float().mean() > 0.95
    outputs = as_float([low, low[:, :, ::2]])
    assert [o.dtype for o in outputs] == [torch.float32, torch.float32]


def test_a_bfloat16_training_step_lowers_a_float32_loss() -> None:
    x = torch.randn(2, 1, 8, 12, 16)
    y = (x[:, 0] > 0).long()
    net = _net().to(memory_format=torch.channels_last_3d)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    losses = []
    for _ in range(20):
        optimizer.zero_grad()
        with cpu_autocast(True):
            logits = as_float(net(x.contiguous(memory_format=torch.channels_last_3d)))
        loss = nn.functional.cross_entropy(logits, y)
        assert loss.dtype == torch.float32
        loss.backward()
        optimizer.step()
        losses.append(float(loss))
    assert losses[-1] < 0.5 * losses[0]
    # the parameters are the optimizer's, still float32 (autocast casts copies)
    assert all(p.dtype == torch.float32 for p in net.parameters())
