"""ONNX AffineGrid (opset 20, constant size, 2-D and 3-D) -> a constant base grid of normalized
(x, y[, z], 1) points ``matmul``'d with theta transposed and reshaped to [N, (D,) H, W, 2|3]."""
from __future__ import annotations

import numpy as np
from coremltools.converters.mil import Builder as mb

from ..backend.convert.registry import op_builder
from ._common import Refuse, const_like, require_const, require_float_input


def normalized_points(n: int, align_corners: bool) -> np.ndarray:
    """Sample positions in [-1, 1]: the corner pixel centers (align_corners) or the pixel centers
    of n equal cells spanning the image edges."""
    if align_corners:
        return np.linspace(-1.0, 1.0, n)
    step = 2.0 / n
    return np.linspace(-1.0 + step / 2, 1.0 - step / 2, n)


def base_grid(spatial, align_corners: bool) -> np.ndarray:
    """[prod(spatial), k + 1] homogeneous points, x fastest, in (x, y[, z], 1) order."""
    axes = [normalized_points(n, align_corners) for n in spatial]  # (D,) H, W
    mesh = np.meshgrid(*axes, indexing="ij")
    coords = [m.reshape(-1) for m in reversed(mesh)]  # x, y[, z]
    return np.stack(coords + [np.ones_like(coords[0])], axis=-1)


@op_builder("AffineGrid", min_opset=20)
def affine_grid(node, ctx):
    theta = ctx.input(node, 0)
    out = node.outputs[0]
    size = [int(v) for v in ctx.const(node.inputs[1]).reshape(-1)]
    spatial = size[2:]
    base = const_like(base_grid(spatial, bool(node.attr("align_corners"))), theta)
    points = mb.matmul(x=base, y=theta, transpose_y=True, name=ctx.tmp("points"))
    shape = np.array([size[0], *spatial, len(spatial)], np.int32)
    ctx.set_output(node, mb.reshape(x=points, shape=shape, name=ctx.mil_name(out)))


@affine_grid.check
def _(node, ctx):
    require_float_input(ctx, node.inputs[0], what="matmul takes")
    size = require_const(ctx, node.inputs[1], "size")
    if size.size not in (4, 5):
        raise Refuse(f"size of {size.size} values (2-D [N, C, H, W] or 3-D [N, C, D, H, W] only)")
    if size.size == 5 and int(np.prod(size[2:])) * 3 > 1 << 26:
        raise Refuse("grid too large")
