"""ONNX Conv (1-/2-/3-D, groups, dilations, every auto_pad) -> MIL ``conv``.

1-D convs stay rank-3 by default (``lowering.conv_1d: native``); ``as_2d`` emits
expand_dims -> 4-D conv -> squeeze for comparison when isolating a node.
"""
from __future__ import annotations

import coremltools as ct
from coremltools.converters.mil import Builder as mb
from coremltools.converters.mil.mil import Var

from ..backend.convert import hazards
from ..backend.convert.context import mil_dtype_of
from ..backend.convert.registry import op_builder
from ._common import Refuse, depthwise_weight, is_static, require_const, spatial_attrs

_PAD_TYPES = {"VALID": "valid", "SAME_UPPER": "same", "SAME_LOWER": "same_lower"}


def same_pads(in_spatial, kernel, strides, dilations, upper: bool):
    """ONNX SAME_UPPER/SAME_LOWER as explicit MIL [begin, end] pads (extra pad at end for UPPER)."""
    pads = []
    for n, k, s, d in zip(in_spatial, kernel, strides, dilations):
        total = max(0, (-(-n // s) - 1) * s + (k - 1) * d + 1 - n)
        small, big = total // 2, total - total // 2
        pads += [small, big] if upper else [big, small]
    return pads


def weight_rank(node, ctx) -> int | None:
    w = ctx.const(node.inputs[1])
    shape = w.shape if w is not None else ctx.shape(node.inputs[1])
    return None if shape is None else len(shape)


@op_builder("Conv")
def conv(node, ctx):
    w_rank = weight_rank(node, ctx)
    k = w_rank - 2
    strides, dilations, pads = spatial_attrs(node, k)
    auto_pad = node.attr("auto_pad", "NOTSET")
    pad_type = _PAD_TYPES.get(auto_pad, "custom")
    x = ctx.input(node, 0)
    weight = ctx.const(node.inputs[1])
    weight = mil_dtype_of(weight) if weight is not None else ctx.var(node.inputs[1])
    in_spatial = list(x.shape[2:])
    if pad_type.startswith("same") and is_static(in_spatial):
        pads = same_pads(in_spatial, weight.shape[2:], strides, dilations, auto_pad == "SAME_UPPER")
        pad_type = "custom"
    bias = ctx.const(node.inputs[2]) if node.has_input(2) else None
    bias = mil_dtype_of(bias) if bias is not None else None
    if not isinstance(weight, Var):
        weight = depthwise_weight(ctx, node, weight, transposed=False, strides=strides, dilations=dilations)
    out = node.outputs[0]
    common = dict(pad_type=pad_type, groups=node.attr("group", 1), bias=bias)
    if k == 1 and ctx.config.lowering("conv_1d", node.name) == "as_2d":
        strides, dilations, pads = hazards.params_1d_as_2d(strides, dilations, pads)
        x2 = hazards.expand_1d(x, ctx.tmp("expand"))
        y = mb.conv(x=x2, weight=hazards.weight_1d_as_2d(weight), strides=strides, dilations=dilations,
                    pad=pads, name=ctx.tmp("conv_2d"), **common)
        ctx.set_output(node, hazards.squeeze_1d(y, ctx.mil_name(out)))
        return
    ctx.set_output(node, mb.conv(x=x, weight=weight, strides=strides, dilations=dilations, pad=pads,
                                 name=ctx.mil_name(out), **common))


@conv.check
def _(node, ctx):
    w_rank = weight_rank(node, ctx)
    if w_rank is None:
        raise Refuse("weight rank is unknown")
    if not 3 <= w_rank <= 5:
        raise Refuse(f"{w_rank - 2}-D convolution (MIL conv takes 1-D to 3-D)")
    if node.has_input(2):

        require_const(ctx, node.inputs[2], "bias")
    shape = ctx.shape(node.inputs[0])
    static = shape is not None and is_static(shape[2:])
    if node.attr("auto_pad") == "SAME_LOWER" and not static and ctx.target < ct.target.iOS16:
        raise Refuse("SAME_LOWER with dynamic spatial dims needs minimum_deployment_target >= iOS16")
    if ctx.config.lowering("conv_1d", node.name) == "as_2d" and w_rank == 3 and not ctx.is_const(node.inputs[1]):
        raise Refuse("as_2d lowering needs a constant weight")
