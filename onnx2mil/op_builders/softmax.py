"""ONNX Softmax / LogSoftmax / Hardmax -> MIL ``softmax``, ``x - reduce_log_sum_exp(x)``, and
``one_hot(reduce_argmax(x))``. Before opset 13 the op works on x coerced to 2-D at ``axis``:
emitted as reshape to (*x.shape[:axis], -1) -> op on the last axis -> reshape back.
"""
from __future__ import annotations

import numpy as np
from coremltools.converters.mil import Builder as mb

from ..backend.convert.registry import op_builder
from ._common import const_like, is_static, require_kinds, require_rank


def _apply(op, x, axis: int, name: str, tmp):
    if op == "Softmax":
        return mb.softmax(x=x, axis=axis, name=name)
    if op == "LogSoftmax":
        lse = mb.reduce_log_sum_exp(x=x, axes=[axis], keep_dims=True, name=tmp("log_sum_exp"))
        return mb.sub(x=x, y=lse, name=name)
    size = x.shape[axis]
    if not isinstance(size, int):
        size = mb.gather(x=mb.shape(x=x, name=tmp("shape")), indices=axis, name=tmp("size"))
    index = mb.reduce_argmax(x=x, axis=axis, keep_dims=False, name=tmp("argmax"))
    return mb.one_hot(indices=index, one_hot_vector_size=size, axis=axis, on_value=const_like(1.0, x),
                      off_value=const_like(0.0, x), name=name)


@op_builder("Softmax", "LogSoftmax", "Hardmax", min_opset=1)
def softmax(node, ctx):
    x = ctx.input(node, 0)
    out = node.outputs[0]
    name = ctx.mil_name(out)

    axis = node.attr("axis") % x.rank
    if node.opset >= 13 or axis == x.rank - 1:
        ctx.set_output(node, _apply(node.op_type, x, axis, name, ctx.tmp))
        return
    if is_static(x.shape[:axis]):
        flat_shape = np.array(list(x.shape[:axis]) + [-1], dtype=np.int32)
    else:
        leading = mb.slice_by_index(x=mb.shape(x=x, name=ctx.tmp("shape")), begin=[0], end=[axis],
                                    name=ctx.tmp("leading"))
        flat_shape = mb.concat(values=[leading, np.array([-1], dtype=np.int32)], axis=0, name=ctx.tmp("flat_shape"))
    flat = mb.reshape(x=x, shape=flat_shape, name=ctx.tmp("flat"))
    y = _apply(node.op_type, flat, axis, ctx.tmp(node.op_type.lower()), ctx.tmp)
    shape = np.array(x.shape, dtype=np.int32) if is_static(x.shape) else mb.shape(x=x, name=ctx.tmp("x_shape"))
    ctx.set_output(node, mb.reshape(x=y, shape=shape, name=name))


@softmax.check
def _(node, ctx):
    require_rank(ctx, node.inputs[0], min_rank=1)
    require_kinds(ctx, node.inputs[:1], ("float",))
