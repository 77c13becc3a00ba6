"""ONNX LayerNormalization (opset 17+) -> MIL ``layer_norm`` over axes [axis, rank), with constant
scale/bias as gamma/beta or, when computed in the graph, as a mul/add after it; the Mean /
InvStdDev outputs expand to reduce_mean / rsqrt. stash_type=1 on an fp16 input computes in fp32
between two casts. With ``lowering.norm_fp16: scaled`` the statistics are taken on a rescaled input
(``scaled_normalize``) so that no fp16 intermediate overflows.
"""
from __future__ import annotations

import numpy as np
from coremltools.converters.mil import Builder as mb
from coremltools.converters.mil.mil import types

from ..backend.convert.registry import op_builder
from .batch_norm import const_like, input_refusal


def normalize(ctx, x, axes, eps: float, out: str, mean_name: str = None, inv_std_name: str = None):
    """``(x - mean) * rsqrt(var + eps)`` over ``axes`` (biased variance), as MIL reductions; the
    mean and inv_std ops take the given names when a builder exposes them as outputs."""
    mean = mb.reduce_mean(x=x, axes=axes, keep_dims=True, name=mean_name or ctx.scratch(f"{out}_mean"))
    centered = mb.sub(x=x, y=mean, name=ctx.scratch(f"{out}_centered"))
    squared = mb.mul(x=centered, y=centered, name=ctx.scratch(f"{out}_squared"))
    var = mb.reduce_mean(x=squared, axes=axes, keep_dims=True, name=ctx.scratch(f"{out}_var"))
    inv_std = mb.rsqrt(x=var, epsilon=const_like(eps, x), name=inv_std_name or ctx.scratch(f"{out}_inv_std"))
    return mb.mul(x=centered, y=inv_std, name=ctx.scratch(f"{out}_normalized")), mean, inv_std


def scaled_normalize(ctx, x, axes, eps: float, out: str, mean_name: str = None, inv_std_name: str = None):
    """``(x - mean) / sqrt(var + eps)`` over ``axes`` with no intermediate beyond fp16's range: the
    centred input is divided by ``s = max(1, max|x - mean|)`` per group and the epsilon by ``s^2``
    (a norm is scale-invariant but for its epsilon: LN(x, eps) = LN(x / s, eps / s^2)).

    Why a runtime ``s`` and not a constant chosen at build time: a constant must fit the data (too
    small and the squares still overflow, too large and the squares of ordinary activations fall
    into fp16's subnormals), while ``s`` from the group itself keeps |y| <= 1, so y^2 <= 1; and since
    max|y| = 1 whenever s > 1, var(y) >= 1 / group size: the rescaled epsilon may underflow fp16
    without a 0 / 0 (a constant group has s = 1 and keeps eps). Why not the fused op: its epsilon
    must be a constant, and eps / s^2 is not. Groups with max|x - mean| <= 1 are computed as
    without the rewrite. Cost: 13 MIL ops in place of one fused norm; exact in fp32 up to rounding.
    coremltools' torch rms_norm rescales without rescaling eps (coremltools#2821): this does both.
    Returns the normalized value, the mean and ``1 / sqrt(var + eps)`` of ``x`` (named as in ``normalize``).
    """
    mean = mb.reduce_mean(x=x, axes=axes, keep_dims=True, name=mean_name or ctx.scratch(f"{out}_mean"))
    centered = mb.sub(x=x, y=mean, name=ctx.scratch(f"{out}_centered"))
    peak = mb.reduce_max(x=mb.abs(x=centered, name=ctx.scratch(f"{out}_abs")), axes=axes, keep_dims=True,
                         name=ctx.scratch(f"{out}_peak"))
    s = mb.maximum(x=peak, y=const_like(1.0, x), name=ctx.scratch(f"{out}_scale"))
    y = mb.real_div(x=centered, y=s, name=ctx.scratch(f"{out}_rescaled"))
    var = mb.reduce_mean(x=mb.mul(x=y, y=y, name=ctx.scratch(f"{out}_squared")), axes=axes, keep_dims=True,
                         name=ctx.scratch(f"{out}_var"))
    # eps / s^2 as (sqrt(eps) / s)^2: never above eps; its fp16 underflow is harmless (var(y) >= 1/n)
    root = mb.real_div(x=const_like(np.sqrt(eps), x), y=s, name=ctx.scratch(f"{out}_eps_root"))
    eps_scaled = mb.mul(x=root, y=root, name=ctx.scratch(f"{out}_eps_scaled"))
    inv_std = mb.rsqrt(x=mb.add(x=var, y=eps_scaled, name=ctx.scratch(f"{out}_var_eps")),
                       name=ctx.scratch(f"{out}_inv_std_scaled"))
    normalized = mb.mul(x=y, y=inv_std, name=ctx.scratch(f"{out}_normalized"))
    if inv_std_name is None:
        return normalized, mean, None
    return normalized, mean, mb.real_div(x=inv_std, y=s, name=inv_std_name)  # of x: 1 / (s sqrt(var(y) + eps'))


def trailing_operand(ctx, node, i: int, x, out: str):
    """Input ``i`` (broadcast against the trailing dims of ``x``) as a constant or var in x's dtype."""
    value = ctx.const(node.inputs[i])
    if value is not None:
        return const_like(value, x)
    var = ctx.var(node.inputs[i])
    if var.dtype != x.dtype:
        var = mb.cast(x=var, dtype=types.builtin_to_string(x.dtype), name=ctx.scratch(f"{out}_cast_{i}"))
    return var


def stash_in_fp32(ctx, node, x, out: str):
    """stash_type=1 asks for fp32 statistics: an fp16 input is cast up (the caller casts back)."""
    if node.attr("stash_type", 1) == 1 and x.dtype == types.fp16:
        return mb.cast(x=x, dtype="fp32", name=ctx.scratch(f"{out}_stash_fp32")), True
    return x, False


def affine(ctx, node, y, x, out: str, name: str):
    """``y * scale + bias`` (bias optional) with ONNX's trailing-dims broadcasting."""
    has_bias = node.has_input(2)
    y = mb.mul(x=y, y=trailing_operand(ctx, node, 1, x, out), name=ctx.scratch(f"{out}_scaled") if has_bias else name)
    if has_bias:
        y = mb.add(x=y, y=trailing_operand(ctx, node, 2, x, out), name=name)
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
    x, stashed = stash_in_fp32(ctx, node, x, out)
    y_name = ctx.scratch(f"{out}_fp32") if stashed else ctx.mil_name(out)
    normalized_shape = x.shape[axis:]
    scale = ctx.const(node.inputs[1])
    bias = ctx.const(node.inputs[2]) if node.has_input(2) else None
    static = all(isinstance(d, int) for d in normalized_shape)
    if ctx.config.lowering("norm_fp16", node.name) == "scaled":
        y, mean, inv_std = scaled_normalize(
            ctx, x, axes, eps, out, mean_name=ctx.mil_name(stats[0]) if stats[0] else None,
            inv_std_name=ctx.mil_name(stats[1]) if stats[1] else None)
        y = affine(ctx, node, y, x, out, y_name)
    elif not any(stats) and static and _fits(scale, normalized_shape) and (
            not node.has_input(2) or _fits(bias, normalized_shape)):
        y = mb.layer_norm(
            x=x, axes=axes, gamma=const_like(np.broadcast_to(scale, normalized_shape), x),
            beta=None if bias is None else const_like(np.broadcast_to(bias, normalized_shape), x),
            epsilon=const_like(eps, x), name=y_name)
    elif not any(stats):  # scale/bias computed in the graph or of another shape: apply after
        y = mb.layer_norm(x=x, axes=axes, epsilon=const_like(eps, x), name=ctx.scratch(f"{out}_normalized"))
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
    refusal = input_refusal(ctx, node.inputs[0])
    rank = ctx.rank(node.inputs[0])
    if refusal is None and not -rank <= node.attr("axis") < rank:
        return f"axis {node.attr('axis')} is out of range for rank {rank}"
    return refusal
