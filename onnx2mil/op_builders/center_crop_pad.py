"""ONNX CenterCropPad (opset 18, constant target shape, optional ``axes``) -> MIL
``slice_by_index`` for the axes that shrink (window start rounded down) and a zero ``pad`` for
the axes that grow (the odd pixel on the right)."""
from __future__ import annotations

import numpy as np
from coremltools.converters.mil import Builder as mb

from ..backend.convert.registry import op_builder
from ._common import Refuse, require_const, require_shape

_PAD_DTYPES = (np.float16, np.float32, np.float64)


def plan(in_shape, target, axes):
    """Per axis: (crop begin, crop end, pad before, pad after)."""
    spans = [(0, d, 0, 0) for d in in_shape]
    for axis, size in zip(axes, target):
        d = in_shape[axis]
        if size <= d:
            begin = (d - size) // 2
            spans[axis] = (begin, begin + size, 0, 0)
        else:
            total = size - d
            spans[axis] = (0, d, total // 2, total - total // 2)
    return spans


@op_builder("CenterCropPad", min_opset=18)
def center_crop_pad(node, ctx):
    x = ctx.input(node, 0)
    rank = x.rank
    axes = [a % rank for a in (node.attr("axes") or range(rank))]
    spans = plan(list(x.shape), [int(v) for v in ctx.const(node.inputs[1]).reshape(-1)], axes)
    crops = any(b != 0 or e != d for (b, e, _, _), d in zip(spans, x.shape))
    pads = [p for (_, _, before, after) in spans for p in (before, after)]
    y = x
    if crops or not any(pads):
        y = mb.slice_by_index(x=x, begin=[s[0] for s in spans], end=[s[1] for s in spans],
                              name=ctx.tmp("crop"))
    if any(pads):
        y = mb.pad(x=y, pad=np.array(pads, np.int32), mode="constant", constant_val=0.0, name=ctx.tmp("pad"))
    ctx.set_output(node, y)


@center_crop_pad.check
def _(node, ctx):
    shape = require_shape(ctx, node.inputs[0])
    target = require_const(ctx, node.inputs[1], "shape")
    rank = len(shape)
    axes = node.attr("axes") or list(range(rank))
    if len(axes) != target.size:
        raise Refuse(f"shape has {target.size} values for {len(axes)} axes")
    if any(not -rank <= a < rank for a in axes):
        raise Refuse(f"axes {axes} out of range for rank {rank}")
    if any(not isinstance(shape[a % rank], int) for a in axes):
        raise Refuse("cropped/padded axes must have static sizes")
    spans = plan(list(shape), [int(v) for v in target.reshape(-1)], [a % rank for a in axes])
    if any(s[2] or s[3] for s in spans) and ctx.dtype(node.inputs[0]) not in _PAD_DTYPES:
        raise Refuse(f"padding a {ctx.dtype(node.inputs[0])} tensor (MIL pad takes fp16/fp32)")
