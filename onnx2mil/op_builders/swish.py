"""ONNX Swish (opset 24) and SwiGLU (opset 28): ``a * sigmoid(alpha * a)`` (times ``b`` for
SwiGLU) -> MIL ``silu`` when alpha is 1, else mul / sigmoid / mul."""
from __future__ import annotations

from coremltools.converters.mil import Builder as mb

from ..backend.convert.registry import op_builder
from ._common import Refuse, const_like, require_float_input


def swish(ctx, x, alpha: float, name: str):
    if alpha == 1.0:
        return mb.silu(x=x, name=name)
    scaled = mb.mul(x=x, y=const_like(alpha, x), name=ctx.tmp("alpha_x"))
    gate = mb.sigmoid(x=scaled, name=ctx.tmp("sigmoid"))
    return mb.mul(x=x, y=gate, name=name)


@op_builder("Swish", "SwiGLU", min_opset=24)
def swish_family(node, ctx):
    out = node.outputs[0]
    alpha = float(node.attr("alpha"))
    if node.op_type == "Swish":
        ctx.set_output(node, swish(ctx, ctx.input(node, 0), alpha, ctx.mil_name(out)))
        return
    gated = swish(ctx, ctx.input(node, 0), alpha, ctx.tmp("swish"))
    ctx.set_output(node, mb.mul(x=gated, y=ctx.input(node, 1), name=ctx.mil_name(out)))


@swish_family.check
def _(node, ctx):
    for name in node.inputs:
        require_float_input(ctx, name, what="activations take")
    if node.op_type == "SwiGLU" and ctx.shape(node.inputs[0]) != ctx.shape(node.inputs[1]):
        raise Refuse("SwiGLU inputs A and B must have identical shapes")
