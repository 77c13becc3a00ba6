"""ONNX Where(condition, X, Y) -> MIL ``select(cond, a, b)``, broadcasting all three."""
from __future__ import annotations

from coremltools.converters.mil import Builder as mb

from ..backend.registry import op_builder
from .binary import dtype_refusal


@op_builder("Where", min_opset=9)
def where(node, ctx):
    cond, a, b = (ctx.input(node, i) for i in range(3))
    ctx.set_output(node, mb.select(cond=cond, a=a, b=b, name=ctx.mil_name(node.outputs[0])))


@where.check
def _(node, ctx):
    return dtype_refusal(ctx, node.inputs[:1], ("bool",)) or dtype_refusal(
        ctx, node.inputs[1:], ("float", "int", "bool"))
