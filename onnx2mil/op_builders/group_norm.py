"""ONNX GroupNormalization -> reshape (N, G, -1) -> MIL ``layer_norm`` over the last axis (or
``scaled_normalize`` with lowering.norm_fp16: scaled) -> reshape back, then scale and bias. Opset 18
takes per-group scale/bias (shape G, applied on the grouped view); opset 21 per-channel (shape C,
applied after reshaping back) and stash_type.
"""
from __future__ import annotations

import numpy as np
from coremltools.converters.mil import Builder as mb

from ..backend.convert.registry import op_builder
from ._common import Refuse, const_like, require_float_input
from ._normalization import operand_like, original_shape, scaled_normalize, stash_in_fp32


def grouped_shape(ctx, x, groups: int, out: str):
    """(N, G, -1) for reshape: a constant when N or the group size is static, else from mb.shape."""
    n, c, spatial = x.shape[0], x.shape[1], x.shape[2:]
    if isinstance(n, int):
        return np.array([n, groups, -1], dtype=np.int32)
    if isinstance(c, int) and all(isinstance(d, int) for d in spatial):
        return np.array([-1, groups, c // groups * int(np.prod(spatial, dtype=np.int64))], dtype=np.int32)
    batch = mb.slice_by_size(x=mb.shape(x=x, name=ctx.tmp("shape")), begin=[0], size=[1],
                             name=ctx.tmp("batch"))
    return mb.concat(values=[batch, np.array([groups, -1], dtype=np.int32)], axis=0,
                     name=ctx.tmp("grouped_shape"))


@op_builder("GroupNormalization", min_opset=18)
def group_norm(node, ctx):
    x = ctx.input(node, 0)
    out = node.outputs[0]
    groups = int(node.attr("num_groups"))
    eps = float(node.attr("epsilon"))
    x, stashed = stash_in_fp32(ctx, node, x) if node.opset >= 21 else (x, False)
    grouped = mb.reshape(x=x, shape=grouped_shape(ctx, x, groups, out), name=ctx.tmp("grouped"))
    if ctx.config.lowering("norm_fp16", node.name) == "scaled":  # fp16-safe statistics (_normalization.py)
        y = scaled_normalize(ctx, grouped, [2], eps)[0]
    else:
        y = mb.layer_norm(x=grouped, axes=[2], epsilon=const_like(eps, x), name=ctx.tmp("normalized"))
    last = ctx.tmp("fp32") if stashed else ctx.mil_name(out)
    if node.opset < 21:  # per-group scale and bias, broadcast as (G, 1) over (N, G, -1)
        y = mb.mul(x=y, y=operand_like(ctx, node, 1, grouped), name=ctx.tmp("scaled"))
        y = mb.add(x=y, y=operand_like(ctx, node, 2, grouped), name=ctx.tmp("shifted"))
        y = mb.reshape(x=y, shape=original_shape(ctx, x), name=last)
    else:
        y = mb.reshape(x=y, shape=original_shape(ctx, x), name=ctx.tmp("ungrouped"))
        y = mb.mul(x=y, y=operand_like(ctx, node, 1, x), name=ctx.tmp("scaled"))
        y = mb.add(x=y, y=operand_like(ctx, node, 2, x), name=last)
    if stashed:
        y = mb.cast(x=y, dtype="fp16", name=ctx.mil_name(out))
    ctx.set_output(node, y)


@group_norm.check
def _(node, ctx):
    shape = require_float_input(ctx, node.inputs[0], min_rank=3)
    groups = node.attr("num_groups")
    if not isinstance(shape[1], int):
        raise Refuse("the channel dim must be static")
    if groups is None or groups <= 0 or shape[1] % groups:
        raise Refuse(f"num_groups {groups} must divide the {shape[1]} channels")
