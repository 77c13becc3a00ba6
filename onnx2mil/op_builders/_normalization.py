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
