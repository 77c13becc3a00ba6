"""ONNX ConvTranspose (1-/2-/3-D, pads, output_padding, output_shape, auto_pad, groups, dilations)
-> MIL ``conv_transpose`` with explicit pads (never ``output_shape``: coremltools#2281).

1-D: ``lowering.conv_transpose_1d`` = ``as_2d`` (default) | ``native`` | ``split_bias``.
ANE adds a rank-3 conv_transpose bias to the first elements only (MNN/BigVGAN report); lower as 4-D.
"""
from __future__ import annotations

import numpy as np
from coremltools.converters.mil import Builder as mb

from ..backend.convert import hazards
from ..backend.convert.context import mil_dtype_of
from ..backend.convert.registry import op_builder
from ._common import Refuse, depthwise_weight, is_static, require_const, require_shape, spatial_attrs


def explicit_pads(node, in_spatial, kernel, strides, dilations, pads):
    """MIL [begin, end] pads per spatial dim; a negative end means output_padding beyond the
    full output (positions that only receive the bias). Only ``output_shape`` needs the input's
    spatial dims (``in_spatial``); explicit pads and SAME_* do not, so they hold for any length."""
    k = len(kernel)
    output_padding = list(node.attr("output_padding") or [0] * k)
    output_shape = node.attr("output_shape")
    auto_pad = node.attr("auto_pad", "NOTSET")
    if output_shape is not None or auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        out = []
        for i in range(k):
            # ONNX: total = s * (in - 1) + output_padding + (k - 1) * d + 1 - target, where SAME's
            # target in * s leaves total free of the input length
            reach = output_padding[i] + (kernel[i] - 1) * dilations[i] + 1
            if output_shape is not None:
                total = strides[i] * (in_spatial[i] - 1) + reach - list(output_shape)[-k:][i]
            else:
                total = reach - strides[i]
            small, big = total // 2, total - total // 2
            out += [small, big] if auto_pad == "SAME_UPPER" else [big, small]
        pads = out
    elif auto_pad == "VALID":
        pads = [0] * (2 * k)
    # fold output_padding into the end pad: MIL computes (in-1)*s + (k-1)*d + 1 - begin - end
    return [p - (output_padding[j // 2] if j % 2 else 0) for j, p in enumerate(pads)]


@op_builder("ConvTranspose")
def conv_transpose(node, ctx):
    x = ctx.input(node, 0)
    weight = mil_dtype_of(ctx.const(node.inputs[1]))
    bias = mil_dtype_of(ctx.const(node.inputs[2])) if node.has_input(2) else None
    k = weight.ndim - 2
    kernel = list(node.attr("kernel_shape") or weight.shape[2:])
    strides, dilations, pads = spatial_attrs(node, k)
    weight = depthwise_weight(ctx, node, weight, transposed=True, strides=strides, dilations=dilations)
    pads = explicit_pads(node, list(x.shape[2:]), kernel, strides, dilations, pads)
    variant = ctx.config.lowering("conv_transpose_1d", node.name) if k == 1 else "native"
    as_2d = variant == "as_2d"
    if as_2d:
        strides, dilations, _ = hazards.params_1d_as_2d(strides, dilations, [])
        pads = [0, 0, *pads]
        weight = hazards.weight_1d_as_2d(weight)
        x = hazards.expand_1d(x, ctx.tmp("expand"))
    extra = [max(0, -p) for p in pads[1::2]]          # output_padding past the full output
    pads = [max(0, p) if j % 2 else p for j, p in enumerate(pads)]
    split_bias = bias is not None and (variant == "split_bias" or any(extra))
    y = mb.conv_transpose(
        x=x, weight=weight, bias=None if split_bias else bias, pad=pads, pad_type="custom",
        strides=strides, dilations=dilations, groups=node.attr("group", 1), name=ctx.tmp("conv_transpose"))
    if any(extra):
        pad_spec = [0, 0] * 2 + [p for e in extra for p in (0, e)]
        y = mb.pad(x=y, pad=np.array(pad_spec, dtype=np.int32), mode="constant", constant_val=0.0,
                   name=ctx.tmp("output_padding"))
    if split_bias:
        shape = (bias.shape[0],) + (1,) * (y.rank - 2)
        y = mb.add(x=y, y=bias.reshape(shape), name=ctx.tmp("bias"))
    if as_2d:
        y = hazards.squeeze_1d(y, ctx.tmp("squeeze"))
    ctx.set_output(node, y)


@conv_transpose.check
def _(node, ctx):
    w = require_const(ctx, node.inputs[1], "weight", "MIL conv_transpose takes a const weight")
    if not 3 <= w.ndim <= 5:
        raise Refuse(f"{w.ndim - 2}-D transposed convolution (MIL takes 1-D to 3-D)")
    if node.has_input(2):

        require_const(ctx, node.inputs[2], "bias")
    shape = require_shape(ctx, node.inputs[0])
    if node.attr("output_shape") is not None and not is_static(shape[2:]):
        raise Refuse("output_shape with symbolic spatial input dims: the pads it implies depend on the "
                "runtime length (explicit pads or auto_pad work at any length)")
