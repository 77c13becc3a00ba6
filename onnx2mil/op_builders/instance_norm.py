"""ONNX InstanceNormalization -> MIL ``instance_norm`` (rank 3-4, constant scale and bias); other
ranks or scale/bias computed in the graph expand to reduce_mean / rsqrt over the spatial axes.
"""
from __future__ import annotations

from coremltools.converters.mil import Builder as mb

from ..backend.registry import op_builder
from .batch_norm import const_like, input_refusal, operand_like


def normalize(ctx, x, axes, eps: float, out: str, mean_name: str = None, inv_std_name: str = None):
    """``(x - mean) * rsqrt(var + eps)`` over ``axes`` (biased variance), as MIL reductions; the
    mean and inv_std ops take the given names when a builder exposes them as outputs."""
    mean = mb.reduce_mean(x=x, axes=axes, keep_dims=True, name=mean_name or ctx.scratch(f"{out}_mean"))
    centered = mb.sub(x=x, y=mean, name=ctx.scratch(f"{out}_centered"))
    squared = mb.mul(x=centered, y=centered, name=ctx.scratch(f"{out}_squared"))
    var = mb.reduce_mean(x=squared, axes=axes, keep_dims=True, name=ctx.scratch(f"{out}_var"))
    inv_std = mb.rsqrt(x=var, epsilon=const_like(eps, x), name=inv_std_name or ctx.scratch(f"{out}_inv_std"))
    return mb.mul(x=centered, y=inv_std, name=ctx.scratch(f"{out}_normalized")), mean, inv_std


@op_builder("InstanceNormalization")
def instance_norm(node, ctx):
    x = ctx.input(node, 0)
    eps = float(node.attr("epsilon"))
    out = node.outputs[0]
    scale, bias = ctx.const(node.inputs[1]), ctx.const(node.inputs[2])
    if scale is not None and bias is not None and 3 <= x.rank <= 4:
        ctx.set_output(node, mb.instance_norm(x=x, gamma=const_like(scale, x), beta=const_like(bias, x),
                                              epsilon=const_like(eps, x), name=ctx.mil_name(out)))
        return
    y, _, _ = normalize(ctx, x, list(range(2, x.rank)), eps, out)
    y = mb.mul(x=y, y=operand_like(ctx, node, 1, x, out), name=ctx.scratch(f"{out}_scaled"))
    ctx.set_output(node, mb.add(x=y, y=operand_like(ctx, node, 2, x, out), name=ctx.mil_name(out)))


@instance_norm.check
def _(node, ctx):
    return input_refusal(ctx, node.inputs[0], min_rank=3)
