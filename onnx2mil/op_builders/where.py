"""ONNX Where(condition, X, Y) -> MIL ``select(cond, a, b)``, broadcasting all three; small-int
values (iOS17+) are selected in int32."""
from __future__ import annotations

from coremltools.converters.mil import Builder as mb

from ..backend.registry import op_builder
from .binary import dtype_refusal, widen


@op_builder("Where", min_opset=9)
def where(node, ctx):
    out = node.outputs[0]
    (a, b), back = widen([ctx.input(node, 1), ctx.input(node, 2)], lambda what: ctx.scratch(f"{out}_{what}"))
    name = ctx.mil_name(out)
    y = mb.select(cond=ctx.input(node, 0), a=a, b=b, name=ctx.scratch(f"{out}_int32") if back else name)
    ctx.set_output(node, mb.cast(x=y, dtype=back, name=name) if back else y)


@where.check
def _(node, ctx):
    return dtype_refusal(ctx, node.inputs[:1], ("bool",)) or dtype_refusal(
        ctx, node.inputs[1:], ("float", "int", "bool"), widens_small_ints=True)
