"""What the normalization builders (batch, instance, group, layer, RMS) share: scale/bias
operands in the input's dtype, broadcast per channel or over the trailing dims; fp32 statistics
for fp16 inputs; the input's shape for reshaping a view back. Not an op module."""
from __future__ import annotations

import numpy as np
from coremltools.converters.mil import Builder as mb
from coremltools.converters.mil.mil import types

from ._common import const_like, is_static


def per_channel(value, rank: int):
    """Shape a (C,) constant or var as (C, 1, ..., 1) to broadcast over (N, C, *D) of ``rank``."""
    if isinstance(value, np.ndarray):
        return value.reshape((-1,) + (1,) * (rank - 2))
    return value if rank == 2 else mb.expand_dims(x=value, axes=list(range(1, rank - 1)))


def trailing_operand(ctx, node, i: int, x):
    """Input ``i`` as a numpy constant or a var in ``x``'s dtype (ONNX broadcasts it against the
    trailing dims of ``x``)."""
    value = ctx.const(node.inputs[i])
    if value is not None:
        return const_like(value, x)
    var = ctx.var(node.inputs[i])
    if var.dtype != x.dtype:
        var = mb.cast(x=var, dtype=types.builtin_to_string(x.dtype), name=ctx.tmp(f"cast_{i}"))
    return var


def operand_like(ctx, node, i: int, x):
    """Input ``i`` in ``x``'s dtype, broadcast per channel over ``x``."""
    value = trailing_operand(ctx, node, i, x)
    if isinstance(value, np.ndarray):
        return per_channel(value, x.rank)
    if x.rank == 2:
        return value
    return mb.expand_dims(x=value, axes=list(range(1, x.rank - 1)), name=ctx.tmp(f"channel_{i}"))


def stash_in_fp32(ctx, node, x):
    """stash_type=1 asks for fp32 statistics: an fp16 input is cast up (the caller casts back)."""
    if node.attr("stash_type", 1) == 1 and x.dtype == types.fp16:
        return mb.cast(x=x, dtype="fp32", name=ctx.tmp("stash_fp32")), True
    return x, False


def original_shape(ctx, x):
    """``x``'s shape for reshaping a view back: a constant when static, else from mb.shape."""
    if is_static(x.shape):
        return np.array(x.shape, dtype=np.int32)
    return mb.shape(x=x, name=ctx.tmp("input_shape"))


def scaled_normalize(ctx, x, axes, eps: float, mean_name: str = None, inv_std_name: str = None):
    """``(x - mean) / sqrt(var + eps)`` over ``axes`` with no intermediate beyond fp16's range: the
    centred input is divided by ``s = max(1, max|x - mean|)`` per group and the epsilon by ``s^2``
    (a norm is scale-invariant but for its epsilon: LN(x, eps) = LN(x / s, eps / s^2)); the
    ``norm_fp16: scaled`` lowering (hazard ``norm_fp16_overflow``).

    Why a runtime ``s`` and not a constant chosen at build time: a constant must fit the data (too
    small and the squares still overflow, too large and the squares of ordinary activations fall
    into fp16's subnormals), while ``s`` from the group itself keeps |y| <= 1, so y^2 <= 1; and since
    max|y| = 1 whenever s > 1, var(y) >= 1 / group size: the rescaled epsilon may underflow fp16
    without a 0 / 0 (a constant group has s = 1 and keeps eps). Why not the fused op: its epsilon
    must be a constant, and eps / s^2 is not. Groups with max|x - mean| <= 1 are computed as
    without the rewrite. Cost: 13 MIL ops in place of one fused norm; exact in fp32 up to rounding.
    coremltools' torch rms_norm rescales without rescaling eps (coremltools#2821): this does both.
    Returns the normalized value, the mean and ``1 / sqrt(var + eps)`` of ``x`` (None unless
    ``inv_std_name`` is given).
    """
    mean = mb.reduce_mean(x=x, axes=axes, keep_dims=True, name=mean_name or ctx.tmp("mean"))
    centered = mb.sub(x=x, y=mean, name=ctx.tmp("centered"))
    peak = mb.reduce_max(x=mb.abs(x=centered, name=ctx.tmp("abs")), axes=axes, keep_dims=True, name=ctx.tmp("peak"))
    s = mb.maximum(x=peak, y=const_like(1.0, x), name=ctx.tmp("scale"))
    y = mb.real_div(x=centered, y=s, name=ctx.tmp("rescaled"))
    var = mb.reduce_mean(x=mb.mul(x=y, y=y, name=ctx.tmp("squared")), axes=axes, keep_dims=True, name=ctx.tmp("var"))
    # eps / s^2 as (sqrt(eps) / s)^2: never above eps; its fp16 underflow is harmless (var(y) >= 1/n)
    root = mb.real_div(x=const_like(np.sqrt(eps), x), y=s, name=ctx.tmp("eps_root"))
    eps_scaled = mb.mul(x=root, y=root, name=ctx.tmp("eps_scaled"))
    inv_std = mb.rsqrt(x=mb.add(x=var, y=eps_scaled, name=ctx.tmp("var_eps")), name=ctx.tmp("inv_std_scaled"))
    normalized = mb.mul(x=y, y=inv_std, name=ctx.tmp("normalized"))
    if inv_std_name is None:
        return normalized, mean, None
    return normalized, mean, mb.real_div(x=inv_std, y=s, name=inv_std_name)  # of x: 1 / (s sqrt(var(y) + eps'))
