"""ONNX LayerNormalization (opset 17+) -> MIL ``layer_norm`` over axes [axis, rank), with constant
scale/bias as gamma/beta or, when computed in the graph, as a mul/add after it; the Mean /
InvStdDev outputs expand to reduce_mean / rsqrt. stash_type=1 on an fp16 input computes in fp32
between two casts. With ``lowering.norm_fp16: scaled`` the statistics are taken on a rescaled input
(``scaled_normalize``) so that no fp16 intermediate overflows.
"""
from __future__ import annotations

import numpy as np
from coremltools.converters.mil import Builder as mb

from ..backend.convert.registry import op_builder
from ._common import const_like, require_axis, require_float_input
from ._normalization import scaled_normalize, stash_in_fp32, trailing_operand


def normalize(ctx, x, axes, eps: float, out: str, mean_name: str = None, inv_std_name: str = None):
    """``(x - mean) * rsqrt(var + eps)`` over ``axes`` (biased variance), as MIL reductions; the
    mean and inv_std ops take the given names when a builder exposes them as outputs."""
    mean = mb.reduce_mean(x=x, axes=axes, keep_dims=True, name=mean_name or ctx.tmp("mean"))
    centered = mb.sub(x=x, y=mean, name=ctx.tmp("centered"))
    squared = mb.mul(x=centered, y=centered, name=ctx.tmp("squared"))
    var = mb.reduce_mean(x=squared, axes=axes, keep_dims=True, name=ctx.tmp("var"))
    inv_std = mb.rsqrt(x=var, epsilon=const_like(eps, x), name=inv_std_name or ctx.tmp("inv_std"))
    return mb.mul(x=centered, y=inv_std, name=ctx.tmp("normalized")), mean, inv_std


def affine(ctx, node, y, x, out: str, name: str):
    """``y * scale + bias`` (bias optional) with ONNX's trailing-dims broadcasting."""
    has_bias = node.has_input(2)
    y = mb.mul(x=y, y=trailing_operand(ctx, node, 1, x), name=ctx.tmp("scaled") if has_bias else name)
    if has_bias:
        y = mb.add(x=y, y=trailing_operand(ctx, node, 2, x), name=name)
    return y


def _fits(value, shape) -> bool:
    """Whether a constant broadcasts to exactly ``shape`` (MIL's gamma/beta shape)."""
    if value is None or value.ndim > len(shape):
        return False
    return all(a in (1, b) for a, b in zip(value.shape[::-1], tuple(shape)[::-1]))


@op_builder("LayerNormalization", min_opset=17)
def layer_norm(node, ctx):
    x = ctx.input(node, 0)
    out = node.outputs[0]
    axis = node.attr("axis") % x.rank
    axes = list(range(axis, x.rank))
    eps = float(node.attr("epsilon"))
    stats = node.outputs[1:] + [""] * (3 - len(node.outputs))
    x, stashed = stash_in_fp32(ctx, node, x)
    y_name = ctx.tmp("fp32") if stashed else ctx.mil_name(out)
    normalized_shape = x.shape[axis:]
    scale = ctx.const(node.inputs[1])
    bias = ctx.const(node.inputs[2]) if node.has_input(2) else None
    static = all(isinstance(d, int) for d in normalized_shape)
    if ctx.config.lowering("norm_fp16", node.name) == "scaled":
        y, mean, inv_std = scaled_normalize(
            ctx, x, axes, eps, mean_name=ctx.mil_name(stats[0]) if stats[0] else None,
            inv_std_name=ctx.mil_name(stats[1]) if stats[1] else None)
        y = affine(ctx, node, y, x, out, y_name)
    elif not any(stats) and static and _fits(scale, normalized_shape) and (
            not node.has_input(2) or _fits(bias, normalized_shape)):
        y = mb.layer_norm(
            x=x, axes=axes, gamma=const_like(np.broadcast_to(scale, normalized_shape), x),
            beta=None if bias is None else const_like(np.broadcast_to(bias, normalized_shape), x),
            epsilon=const_like(eps, x), name=y_name)
    elif not any(stats):  # scale/bias computed in the graph or of another shape: apply after
        y = mb.layer_norm(x=x, axes=axes, epsilon=const_like(eps, x), name=ctx.tmp("normalized"))
        y = affine(ctx, node, y, x, out, y_name)
    else:
        y, mean, inv_std = normalize(
            ctx, x, axes, eps, out,
            mean_name=ctx.mil_name(stats[0]) if stats[0] else None,
            inv_std_name=ctx.mil_name(stats[1]) if stats[1] else None)
        y = affine(ctx, node, y, x, out, y_name)
    if stashed:
        y = mb.cast(x=y, dtype="fp16", name=ctx.mil_name(out))
    ctx.set_output(node, y, *([mean, inv_std] if any(stats) else []))


@layer_norm.check
def _(node, ctx):
    require_axis(node.attr("axis"), len(require_float_input(ctx, node.inputs[0])))
