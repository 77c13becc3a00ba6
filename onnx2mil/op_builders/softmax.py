"""ONNX Softmax / LogSoftmax / Hardmax -> MIL ``softmax``, ``x - reduce_log_sum_exp(x)``, and
``one_hot(reduce_argmax(x))``. Before opset 13 the op works on x coerced to 2-D at ``axis``:
emitted as reshape to (*x.shape[:axis], -1) -> op on the last axis -> reshape back.
"""
from __future__ import annotations

import numpy as np
from coremltools.converters.mil import Builder as mb

from ..backend.convert.registry import op_builder
from .binary import dtype_refusal, like


def _apply(op, x, axis: int, name: str, scratch):
    if op == "Softmax":
        return mb.softmax(x=x, axis=axis, name=name)
    if op == "LogSoftmax":
        lse = mb.reduce_log_sum_exp(x=x, axes=[axis], keep_dims=True, name=scratch("log_sum_exp"))
        return mb.sub(x=x, y=lse, name=name)
    size = x.shape[axis]
    if not isinstance(size, int):
        size = mb.gather(x=mb.shape(x=x, name=scratch("shape")), indices=axis, name=scratch("size"))
    index = mb.reduce_argmax(x=x, axis=axis, keep_dims=False, name=scratch("argmax"))
    return mb.one_hot(indices=index, one_hot_vector_size=size, axis=axis, on_value=like(1.0, x),
                      off_value=like(0.0, x), name=name)


def _static(dims) -> bool:
    return all(isinstance(d, int) for d in dims)


@op_builder("Softmax", "LogSoftmax", "Hardmax", min_opset=1)
def softmax(node, ctx):
    x = ctx.input(node, 0)
    out = node.outputs[0]
    name = ctx.mil_name(out)

    def scratch(what):
        return ctx.scratch(f"{out}_{what}")

    axis = node.attr("axis") % x.rank
    if node.opset >= 13 or axis == x.rank - 1:
        ctx.set_output(node, _apply(node.op_type, x, axis, name, scratch))
        return
    if _static(x.shape[:axis]):
        flat_shape = np.array(list(x.shape[:axis]) + [-1], dtype=np.int32)
    else:
        leading = mb.slice_by_index(x=mb.shape(x=x, name=scratch("shape")), begin=[0], end=[axis],
                                    name=scratch("leading"))
        flat_shape = mb.concat(values=[leading, np.array([-1], dtype=np.int32)], axis=0, name=scratch("flat_shape"))
    flat = mb.reshape(x=x, shape=flat_shape, name=scratch("flat"))
    y = _apply(node.op_type, flat, axis, scratch(node.op_type.lower()), scratch)
    shape = np.array(x.shape, dtype=np.int32) if _static(x.shape) else mb.shape(x=x, name=scratch("x_shape"))
    ctx.set_output(node, mb.reshape(x=y, shape=shape, name=name))


@softmax.check
def _(node, ctx):
    rank = ctx.rank(node.inputs[0])
    if rank is None or rank == 0:
        return "input rank must be known and >= 1"
    return dtype_refusal(ctx, node.inputs[:1], ("float",))
