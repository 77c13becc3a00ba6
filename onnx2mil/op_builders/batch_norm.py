"""ONNX BatchNormalization (inference, opsets 9-15) -> MIL ``batch_norm`` for rank 3-5 with constant
statistics; otherwise elementwise: ``x * a + b`` with ``a, b`` folded from constants, or
``(x - mean) * rsqrt(var + eps) * scale + bias`` when a statistic is computed in the graph.
"""
from __future__ import annotations

import numpy as np
from coremltools.converters.mil import Builder as mb
from coremltools.converters.mil.mil import types

from ..backend.convert.registry import op_builder

_FLOATS = (np.float16, np.float32, np.float64)


def input_refusal(ctx, name: str, min_rank: int = 0, what: str = "normalizes") -> str | None:
    """Why a float input of known rank ``min_rank``..5 (Core ML's tensor rank limit) is refused, if it is."""
    rank = ctx.rank(name)
    if rank is None:
        return "input rank must be known"
    if rank < min_rank:
        return f"input rank {rank} is below {min_rank} (N, C, ...)"
    if rank > 5:
        return f"input rank {rank} (Core ML tensors have rank <= 5)"
    if ctx.dtype(name) not in _FLOATS:
        return f"input dtype {ctx.dtype(name)} (MIL {what} fp16/fp32 only)"
    return None


def np_dtype(var) -> type:
    """The numpy dtype of a MIL var (fp16 -> np.float16 ...)."""
    return types.nptype_from_builtin(var.dtype)


def const_like(value, var) -> np.ndarray:
    """A numpy constant in the dtype of ``var`` (MIL ops need both operands in one dtype)."""
    return np.asarray(value).astype(np_dtype(var))


def per_channel(value, rank: int):
    """Shape a (C,) constant or var as (C, 1, ..., 1) to broadcast over (N, C, *D) of ``rank``."""
    if isinstance(value, np.ndarray):
        return value.reshape((-1,) + (1,) * (rank - 2))
    return value if rank == 2 else mb.expand_dims(x=value, axes=list(range(1, rank - 1)))


def operand_like(ctx, node, i: int, x, out: str):
    """Input ``i`` as a numpy constant or a var in ``x``'s dtype, broadcast per channel over ``x``."""
    value = ctx.const(node.inputs[i])
    if value is not None:
        return per_channel(const_like(value, x), x.rank)
    var = ctx.var(node.inputs[i])
    if var.dtype != x.dtype:
        var = mb.cast(x=var, dtype=types.builtin_to_string(x.dtype), name=ctx.scratch(f"{out}_cast_{i}"))
    if x.rank == 2:
        return var
    return mb.expand_dims(x=var, axes=list(range(1, x.rank - 1)), name=ctx.scratch(f"{out}_channel_{i}"))


@op_builder("BatchNormalization", min_opset=9)
def batch_norm(node, ctx):
    x = ctx.input(node, 0)
    out = node.outputs[0]
    if x.dtype == types.fp16 and any(ctx.dtype(node.inputs[i]) != np.float16 for i in range(1, 5)):
        # fp32 statistics (opset 15's T1/T2) on an fp16 input: normalize in fp32, round once.
        x = mb.cast(x=x, dtype="fp32", name=ctx.scratch(f"{out}_fp32_input"))
        y = _normalize(node, ctx, x, ctx.scratch(f"{out}_fp32"))
        ctx.set_output(node, mb.cast(x=y, dtype="fp16", name=ctx.mil_name(out)))
        return
    ctx.set_output(node, _normalize(node, ctx, x, ctx.mil_name(out)))


def _normalize(node, ctx, x, name: str):
    eps = float(node.attr("epsilon"))
    out = node.outputs[0]
    consts = [ctx.const(node.inputs[i]) for i in range(1, 5)]
    if all(c is not None for c in consts):
        scale, bias, mean, var = (c.astype(np.float64) for c in consts)
        if 3 <= x.rank <= 5:
            return mb.batch_norm(x=x, mean=const_like(mean, x), variance=const_like(var, x),
                                 gamma=const_like(scale, x), beta=const_like(bias, x),
                                 epsilon=const_like(eps, x), name=name)
        a = scale / np.sqrt(var + eps)
        y = mb.mul(x=x, y=per_channel(const_like(a, x), x.rank), name=ctx.scratch(f"{out}_scale"))
        return mb.add(x=y, y=per_channel(const_like(bias - mean * a, x), x.rank), name=name)
    scale, bias, mean, var = (operand_like(ctx, node, i, x, out) for i in range(1, 5))
    if not isinstance(var, np.ndarray):
        inv_std = mb.rsqrt(x=var, epsilon=const_like(eps, x), name=ctx.scratch(f"{out}_inv_std"))
    else:
        inv_std = const_like(1.0 / np.sqrt(var.astype(np.float64) + eps), x)
    y = mb.sub(x=x, y=mean, name=ctx.scratch(f"{out}_centered"))
    y = mb.mul(x=y, y=inv_std, name=ctx.scratch(f"{out}_normalized"))
    y = mb.mul(x=y, y=scale, name=ctx.scratch(f"{out}_scaled"))
    return mb.add(x=y, y=bias, name=name)


@batch_norm.check
def _(node, ctx):
    if node.attr("training_mode", 0):
        return "training_mode=1 (batch statistics) is not supported; export the model in eval mode"
    if any(node.outputs[1:]):
        return "the running/saved mean and variance outputs exist only in training"
    return input_refusal(ctx, node.inputs[0], min_rank=2)
