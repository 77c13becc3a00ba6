"""ONNX MeanVarianceNormalization -> ``(x - mean) / (sqrt(var) + 1e-9)`` over ``axes`` with MIL
reductions (the ONNX function body's epsilon; the variance is taken as mean((x - mean)^2))."""
from __future__ import annotations

from coremltools.converters.mil import Builder as mb

from ..backend.convert.registry import op_builder
from ._common import const_like, require_axis, require_float_input

EPSILON = 1e-9  # onnx.defs MeanVarianceNormalization function body


@op_builder("MeanVarianceNormalization", min_opset=9)
def mean_variance_normalization(node, ctx):
    x = ctx.input(node, 0)
    out = node.outputs[0]
    axes = [a % x.rank for a in node.attr("axes")]
    mean = mb.reduce_mean(x=x, axes=axes, keep_dims=True, name=ctx.tmp("mean"))
    centered = mb.sub(x=x, y=mean, name=ctx.tmp("centered"))
    squared = mb.mul(x=centered, y=centered, name=ctx.tmp("squared"))
    var = mb.reduce_mean(x=squared, axes=axes, keep_dims=True, name=ctx.tmp("var"))
    std = mb.sqrt(x=var, name=ctx.tmp("std"))
    std = mb.add(x=std, y=const_like(EPSILON, x), name=ctx.tmp("std_eps"))
    ctx.set_output(node, mb.real_div(x=centered, y=std, name=ctx.mil_name(out)))


@mean_variance_normalization.check
def _(node, ctx):
    rank = len(require_float_input(ctx, node.inputs[0], what="reduces"))
    for axis in node.attr("axes"):
        require_axis(axis, rank)
