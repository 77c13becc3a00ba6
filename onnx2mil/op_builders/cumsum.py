"""ONNX CumSum (constant axis input; ``exclusive``, ``reverse``) -> MIL ``cumsum``."""
from __future__ import annotations

from coremltools.converters.mil import Builder as mb

from ..backend.convert.registry import op_builder
from ._common import require_axis, require_const, require_float_or_int, require_rank


@op_builder("CumSum", min_opset=11)
def cumsum(node, ctx):
    axis = int(ctx.const(node.inputs[1]).reshape(-1)[0])
    y = mb.cumsum(x=ctx.input(node, 0), axis=axis, exclusive=bool(node.attr("exclusive", 0)),
                  reverse=bool(node.attr("reverse", 0)), name=ctx.mil_name(node.outputs[0]))
    ctx.set_output(node, y)


@cumsum.check
def _(node, ctx):
    rank = require_rank(ctx, node.inputs[0])
    require_float_or_int(ctx, node.inputs[0], "MIL cumsum takes fp16, fp32, int32")
    axis = require_const(ctx, node.inputs[1], "axis")
    require_axis(int(axis.reshape(-1)[0]), rank)
