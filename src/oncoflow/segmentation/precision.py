"""Numeric precision and memory layout of the multitask nnU-Net on a CPU.

nnU-Net trains and predicts in float16 autocast on CUDA and in float32 on a CPU. On a CPU with
native bfloat16 instructions (AVX512-BF16 or AMX) oneDNN runs 3D convolutions in bfloat16 about
twice as fast in training and several times as fast in inference, more so with the weights and
activations in the ``channels_last_3d`` layout (``benchmarks/cpu_precision.py``). bfloat16 keeps
float32's exponent range with 8 mantissa bits, so the losses, whose Dice sums run over ~10^5
voxels, are computed in float32 from float32 copies of the outputs (:func:`as_float`).

``nnunet.trainer.cpu_precision`` chooses (:func:`cpu_bf16`): ``fp32`` (nnU-Net's behaviour),
``bf16``, or ``auto`` (``bf16`` where the CPU has native bfloat16, else ``fp32``: emulated
bfloat16 is slower than float32). The trainer and the predictor read the same setting, so a model
is validated and tested the way it was trained.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator

import torch

PRECISIONS = ("fp32", "bf16", "auto")
"""Values of ``nnunet.trainer.cpu_precision``."""


def cpu_bf16(precision: str) -> bool:
    """Whether CPU forward passes run under bfloat16 autocast for ``cpu_precision``.

    Raises:
        ValueError: ``precision`` is not one of :data:`PRECISIONS`.
    """
    if precision not in PRECISIONS:
        msg = f"cpu_precision must be one of {', '.join(PRECISIONS)}, got {precision!r}"
        raise ValueError(msg)
    if precision == "auto":
        return native_bf16()
    return precision == "bf16"


@functools.cache
def native_bf16() -> bool:
    """Whether this CPU has bfloat16 instructions (AVX512-BF16 or AMX tiles)."""
    return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


def as_float(output: torch.Tensor | list[torch.Tensor]) -> torch.Tensor | list[torch.Tensor]:
    """Float32 copies of a network's output (a tensor, or a list with deep supervision)."""
    if isinstance(output, list | tuple):
        return [o.float() for o in output]
    return output.float()


@contextlib.contextmanager
def cpu_autocast(enabled: bool) -> Iterator[None]:
    """bfloat16 autocast of CPU operations inside the block when ``enabled``, else nothing."""
    if not enabled:
        yield
        return
    with torch.autocast("cpu", dtype=torch.bfloat16):
        yield
