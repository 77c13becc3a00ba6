"""ONNX Reduce* -> MIL ``reduce_*`` (axes attribute before opset 18 — ReduceSum 13 — and a
constant axes input after; empty axes reduce all, or with noop_with_empty_axes keep the shape and
apply only the elementwise part, as onnxruntime and ONNX's reference do). ArgMax/ArgMin ->
``reduce_argmax``/``reduce_argmin``; select_last_index reverses the axis and maps i -> n-1-i.
Bool ReduceMax/ReduceMin (opset 20) reduce an int32 cast; over a static empty axis they are constants.
"""
from __future__ import annotations

import numpy as np
from coremltools.converters.mil import Builder as mb
from coremltools.converters.mil.mil import types

from ..backend.convert.registry import op_builder
from ._common import Refuse, const_like, is_static, require_const, require_kinds, require_rank

_REDUCE = {
    "ReduceMean": "reduce_mean", "ReduceSum": "reduce_sum", "ReduceMax": "reduce_max",
    "ReduceMin": "reduce_min", "ReduceProd": "reduce_prod", "ReduceL1": "reduce_l1_norm",
    "ReduceL2": "reduce_l2_norm", "ReduceLogSum": "reduce_log_sum",
    "ReduceLogSumExp": "reduce_log_sum_exp", "ReduceSumSquare": "reduce_sum_square",
}
_FLOAT_ONLY = ("ReduceMean", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp")
# Reducing over no axis leaves one element per set: what remains of each reduction.
_NOOP = {"ReduceL1": "abs", "ReduceL2": "abs", "ReduceSumSquare": "square", "ReduceLogSum": "log"}


def _axes_from_input(node) -> bool:
    return node.opset >= (13 if node.op_type == "ReduceSum" else 18)


def _axes(node, ctx):
    """The ONNX axes as a list ([] when absent or empty)."""
    if _axes_from_input(node):
        return [int(a) for a in ctx.const(node.inputs[1]).reshape(-1)] if node.has_input(1) else []
    return list(node.attr("axes") or [])


@op_builder(*_REDUCE, min_opset=1)
def reduce(node, ctx):
    x = ctx.input(node, 0)
    name = ctx.mil_name(node.outputs[0])
    axes = _axes(node, ctx)
    if not axes and node.attr("noop_with_empty_axes", 0):
        noop = _NOOP.get(node.op_type)
        if noop == "log":
            y = mb.log(x=x, epsilon=const_like(0.0, x), name=name)
        else:
            y = getattr(mb, noop)(x=x, name=name) if noop else mb.identity(x=x, name=name)
        ctx.set_output(node, y)
        return
    empty = _empty_set(node, x, axes, name)
    if empty is not None:
        ctx.set_output(node, empty)
        return
    as_bool = types.is_bool(x.dtype)  # ReduceMax/ReduceMin of bool (opset 20): any/all over int32
    if as_bool:
        x = mb.cast(x=x, dtype="int32", name=ctx.tmp("int32"))
    y = getattr(mb, _REDUCE[node.op_type])(
        x=x, axes=sorted(a % x.rank for a in axes) if axes else None,
        keep_dims=bool(node.attr("keepdims", 1)),
        name=ctx.tmp("int32_reduced") if as_bool else name)
    ctx.set_output(node, mb.cast(x=y, dtype="bool", name=name) if as_bool else y)


def _empty_set(node, x, axes, name):
    """ReduceMax/ReduceMin over a static zero-size axis is the reduction's identity (ONNX: -inf/+inf,
    the dtype's min/max, False/True) in the output shape: a constant."""
    reduced = {a % x.rank for a in axes} if axes else set(range(x.rank))
    if node.op_type not in ("ReduceMax", "ReduceMin") or not is_static(x.shape) \
            or not any(x.shape[a] == 0 for a in reduced):
        return None
    keep = bool(node.attr("keepdims", 1))
    shape = [1 if a in reduced else d for a, d in enumerate(x.shape) if keep or a not in reduced]
    is_max = node.op_type == "ReduceMax"
    if types.is_bool(x.dtype):
        value = not is_max
    elif types.is_int(x.dtype):
        value = np.iinfo(np.int32).min if is_max else np.iinfo(np.int32).max
    else:
        value = -np.inf if is_max else np.inf
    return mb.const(val=np.full(shape, value, dtype=types.nptype_from_builtin(x.dtype)), name=name)


@reduce.check
def _(node, ctx):
    if _axes_from_input(node) and node.has_input(1):

        require_const(ctx, node.inputs[1], "axes", "MIL reductions take constant axes")
    require_rank(ctx, node.inputs[0], min_rank=1)
    shape = ctx.shape(node.inputs[0])
    if node.op_type in ("ReduceMax", "ReduceMin") and 0 in shape and any(not isinstance(d, int) for d in shape):
        raise Refuse("a zero-size input with symbolic dims: the empty max/min's constant result has no known shape")
    allowed = ("float",) if node.op_type in _FLOAT_ONLY else ("float", "int")
    if node.op_type in ("ReduceMax", "ReduceMin"):
        allowed += ("bool",)
    require_kinds(ctx, node.inputs[:1], allowed)


@op_builder("ArgMax", "ArgMin", min_opset=1)
def arg_reduce(node, ctx):
    x = ctx.input(node, 0)
    out = node.outputs[0]
    name = ctx.mil_name(out)
    axis = node.attr("axis", 0) % x.rank
    keep = bool(node.attr("keepdims", 1))
    fn = mb.reduce_argmax if node.op_type == "ArgMax" else mb.reduce_argmin
    if not node.attr("select_last_index", 0):
        ctx.set_output(node, fn(x=x, axis=axis, keep_dims=keep, name=name))
        return
    flipped = mb.reverse(x=x, axes=[axis], name=ctx.tmp("reversed"))
    index = fn(x=flipped, axis=axis, keep_dims=keep, name=ctx.tmp("reversed_index"))
    size = x.shape[axis]
    if isinstance(size, int):
        last = np.array(size - 1, dtype=np.int32)
    else:
        dim = mb.gather(x=mb.shape(x=x, name=ctx.tmp("shape")), indices=axis,
                        name=ctx.tmp("size"))
        last = mb.sub(x=dim, y=np.int32(1), name=ctx.tmp("last"))
    ctx.set_output(node, mb.sub(x=last, y=index, name=name))


@arg_reduce.check
def _(node, ctx):
    require_rank(ctx, node.inputs[0], min_rank=1)
    require_kinds(ctx, node.inputs[:1], ("float", "int"))
