"""ONNX InstanceNormalization -> MIL ``instance_norm`` on a 4-D view, with constant scale and bias
as its gamma/beta or, when they are computed in the graph, as a mul/add after it.

The view avoids two Core ML hazards: rank-3 instance_norm mismatches (coremltools#1051), so 1-D
inputs get a unit axis; a rank-5 reduction over axis 4 aborts the GPU's fused norm kernel
(coremltools#2667), so 3-D inputs have their spatial dims merged.
"""
from __future__ import annotations

import numpy as np
from coremltools.converters.mil import Builder as mb

from ..backend.convert.registry import op_builder
from ._common import const_like, require_float_input
from ._normalization import operand_like, original_shape, scaled_normalize


def _merged_spatial_shape(ctx, x, out: str):
    """(N, C, D*H*W, 1) for reshape, with at most one -1 (from mb.shape when N and C are dynamic)."""
    n, c = x.shape[:2]
    if isinstance(n, int) and isinstance(c, int):
        return np.array([n, c, -1, 1], dtype=np.int32)
    if isinstance(c, int) and all(isinstance(d, int) for d in x.shape[2:]):
        return np.array([-1, c, int(np.prod(x.shape[2:])), 1], dtype=np.int32)
    lead = mb.slice_by_size(x=mb.shape(x=x, name=ctx.tmp("shape")), begin=[0], size=[2],
                            name=ctx.tmp("batch_channels"))
    return mb.concat(values=[lead, np.array([-1, 1], dtype=np.int32)], axis=0, name=ctx.tmp("view_shape"))


@op_builder("InstanceNormalization")
def instance_norm(node, ctx):
    x = ctx.input(node, 0)
    eps = float(node.attr("epsilon"))
    out = node.outputs[0]
    if x.rank == 3:
        view = mb.expand_dims(x=x, axes=[3], name=ctx.tmp("as_4d"))
    elif x.rank == 5:
        view = mb.reshape(x=x, shape=_merged_spatial_shape(ctx, x, out), name=ctx.tmp("as_4d"))
    else:
        view = x
    name = ctx.mil_name(out) if view is x else ctx.tmp("4d")
    scale, bias = ctx.const(node.inputs[1]), ctx.const(node.inputs[2])
    if ctx.config.lowering("norm_fp16", node.name) == "scaled":  # fp16-safe statistics (_normalization.py)
        y = scaled_normalize(ctx, view, list(range(2, view.rank)), eps)[0]
        y = mb.mul(x=y, y=operand_like(ctx, node, 1, view), name=ctx.tmp("scaled"))
        y = mb.add(x=y, y=operand_like(ctx, node, 2, view), name=name)
    elif scale is not None and bias is not None:
        y = mb.instance_norm(x=view, gamma=const_like(scale, x), beta=const_like(bias, x),
                             epsilon=const_like(eps, x), name=name)
    else:  # scale or bias computed in the graph: normalize, then apply them per channel
        y = mb.instance_norm(x=view, epsilon=const_like(eps, x), name=ctx.tmp("normalized"))
        y = mb.mul(x=y, y=operand_like(ctx, node, 1, view), name=ctx.tmp("scaled"))
        y = mb.add(x=y, y=operand_like(ctx, node, 2, view), name=name)
    if x.rank == 3:
        y = mb.squeeze(x=y, axes=[3], name=ctx.mil_name(out))
    elif x.rank == 5:
        y = mb.reshape(x=y, shape=original_shape(ctx, x), name=ctx.mil_name(out))
    ctx.set_output(node, y)


@instance_norm.check
def _(node, ctx):
    require_float_input(ctx, node.inputs[0], min_rank=3)
