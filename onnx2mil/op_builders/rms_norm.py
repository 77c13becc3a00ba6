"""ONNX RMSNormalization (opset 23) -> ``x * 1/sqrt(mean(x^2 over [axis, rank)) + eps) * scale`` as
MIL mul / reduce_mean / add / sqrt / real_div. stash_type=1 on an fp16 input computes in fp32
between two casts."""
from __future__ import annotations

from coremltools.converters.mil import Builder as mb

from ..backend.convert.registry import op_builder
from ._common import const_like, require_axis, require_float_input
from ._normalization import stash_in_fp32, trailing_operand


@op_builder("RMSNormalization", min_opset=23)
def rms_norm(node, ctx):
    x = ctx.input(node, 0)
    out = node.outputs[0]
    axes = list(range(node.attr("axis") % x.rank, x.rank))
    x, stashed = stash_in_fp32(ctx, node, x)
    squared = mb.mul(x=x, y=x, name=ctx.tmp("squared"))
    mean = mb.reduce_mean(x=squared, axes=axes, keep_dims=True, name=ctx.tmp("mean_square"))
    shifted = mb.add(x=mean, y=const_like(node.attr("epsilon"), x), name=ctx.tmp("plus_eps"))
    rms = mb.sqrt(x=shifted, name=ctx.tmp("rms"))
    normalized = mb.real_div(x=x, y=rms, name=ctx.tmp("normalized"))
    y_name = ctx.tmp("fp32") if stashed else ctx.mil_name(out)
    y = mb.mul(x=normalized, y=trailing_operand(ctx, node, 1, x), name=y_name)
    if stashed:
        y = mb.cast(x=y, dtype="fp16", name=ctx.mil_name(out))
    ctx.set_output(node, y)


@rms_norm.check
def _(node, ctx):
    require_axis(node.attr("axis"), len(require_float_input(ctx, node.inputs[0])))
