"""Known CoreML / ANE hazards and the lowerings that avoid them.

Each hazard names the op family it affects, what goes wrong, where it was reported, and the
config key (``lowering``) that selects how onnx2mil emits the op.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from coremltools.converters.mil import Builder as mb


@dataclass(frozen=True)
class Hazard:
    key: str
    op: str
    summary: str
    reference: str


HAZARDS = (
    Hazard("conv_transpose_1d", "ConvTranspose (1-D)",
           "On the Neural Engine a rank-3 conv_transpose adds its bias to the first elements of each "
           "channel only; size-dependent. Lowered as expand_dims -> 4-D conv_transpose -> squeeze.",
           "MNN CoreML backend, Qwen2.5-Omni BigVGAN vocoder report"),
    Hazard("conv_transpose_output_shape", "ConvTranspose",
           "conv_transpose with an explicit output_shape gives different results on CPU and ANE; "
           "the pass add_conv_transpose_output_shape is removed from the pipeline.",
           "coremltools#2281"),
    Hazard("conv_1d", "Conv (1-D)",
           "No known hazard; as_2d is offered to compare lowerings when isolating a node.",
           "onnx2mil"),
)


def expand_1d(x, name: str):
    """(N, C, L) -> (N, C, 1, L)."""
    return mb.expand_dims(x=x, axes=[-2], name=name)


def squeeze_1d(x, name: str):
    """(N, C, 1, L) -> (N, C, L)."""
    return mb.squeeze(x=x, axes=[-2], name=name)


def weight_1d_as_2d(weight: np.ndarray) -> np.ndarray:
    """(A, B, K) -> (A, B, 1, K)."""
    return weight[:, :, None, :]


def params_1d_as_2d(strides, dilations, pads):
    """Spatial params of a 1-D op for the (1, L) 2-D form; pads are MIL's [begin, end]."""
    return [1, *strides], [1, *dilations], [0, 0, *pads]
