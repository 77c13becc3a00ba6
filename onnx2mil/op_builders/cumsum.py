"""ONNX CumSum (constant axis input; ``exclusive``, ``reverse``) -> MIL ``cumsum``."""
from __future__ import annotations

import numpy as np
from coremltools.converters.mil import Builder as mb

from ..backend.convert.registry import op_builder


@op_builder("CumSum", min_opset=11)
def cumsum(node, ctx):
    axis = int(ctx.const(node.inputs[1]).reshape(-1)[0])
    y = mb.cumsum(x=ctx.input(node, 0), axis=axis, exclusive=bool(node.attr("exclusive", 0)),
                  reverse=bool(node.attr("reverse", 0)), name=ctx.mil_name(node.outputs[0]))
    ctx.set_output(node, y)


@cumsum.check
def _(node, ctx):
    rank = ctx.rank(node.inputs[0])
    if rank is None:
        return "input rank is unknown"
    dtype = ctx.dtype(node.inputs[0])
    if dtype is not None and not (np.issubdtype(dtype, np.floating) or dtype in (np.int32, np.int64)):
        return f"data dtype {dtype}: MIL cumsum takes fp16, fp32, int32"
    axis = ctx.const(node.inputs[1])
    if axis is None:
        return "axis must be a constant (initializer)"
    if not -rank <= int(axis.reshape(-1)[0]) < rank:
        return f"axis {int(axis.reshape(-1)[0])} is out of range for rank {rank}"
    return None
