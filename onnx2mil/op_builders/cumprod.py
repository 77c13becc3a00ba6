"""ONNX CumProd (opset 26; ``exclusive``, ``reverse``) -> a MIL ``while_loop`` over a static axis
whose step multiplies the running product by one slice and writes it into the output buffer. Exact
for zeros and negatives (no log/exp); the op count does not grow with the axis length."""
from __future__ import annotations

import numpy as np
from coremltools.converters.mil import Builder as mb

from ..backend.convert.registry import op_builder
from ._common import const_like


def _ones_like(ctx, ref, out: str):
    """Ones shaped like ``ref``: a constant when its shape is static, else a ``fill`` of its shape."""
    if all(isinstance(d, int) for d in ref.shape):
        return const_like(np.ones(ref.shape), ref)
    return mb.fill(shape=mb.shape(x=ref, name=ctx.scratch(f"{out}_slice_shape")), value=const_like(1, ref),
                   name=ctx.scratch(f"{out}_ones"))


@op_builder("CumProd", min_opset=26)
def cumprod(node, ctx):
    x = ctx.input(node, 0)
    out = node.outputs[0]
    axis = int(ctx.const(node.inputs[1]).reshape(-1)[0]) % x.rank
    n = x.shape[axis]
    exclusive, reverse = bool(node.attr("exclusive")), bool(node.attr("reverse"))
    first = mb.gather(x=x, indices=np.int32(0), axis=axis, name=ctx.scratch(f"{out}_first"))

    def more(k, running, buffer):
        return mb.less(x=k, y=np.int32(n), name=ctx.scratch(f"{out}_more"))

    def step(k, running, buffer):
        at = mb.sub(x=np.int32(n - 1), y=k, name=ctx.scratch(f"{out}_at")) if reverse else k
        product = mb.mul(x=running, y=mb.gather(x=x, indices=at, axis=axis, name=ctx.scratch(f"{out}_slice")),
                         name=ctx.scratch(f"{out}_product"))
        written = running if exclusive else product  # exclusive: the product of the slices before
        buffer = mb.scatter(data=buffer, indices=mb.expand_dims(x=at, axes=[0], name=ctx.scratch(f"{out}_index")),
                            updates=mb.expand_dims(x=written, axes=[axis], name=ctx.scratch(f"{out}_update")),
                            axis=axis, mode="update", name=ctx.scratch(f"{out}_written"))
        return mb.add(x=k, y=np.int32(1), name=ctx.scratch(f"{out}_next")), product, buffer

    # the buffer starts as x (its shape and dtype); every position is written before the loop ends
    results = mb.while_loop(_cond=more, _body=step, loop_vars=(np.int32(0), _ones_like(ctx, first, out), x),
                            name=ctx.scratch(f"{out}_loop"))
    ctx.set_output(node, mb.identity(x=results[2], name=ctx.mil_name(out)))


@cumprod.check
def _(node, ctx):
    shape = ctx.shape(node.inputs[0])
    if shape is None:
        return "input shape is unknown"
    dtype = ctx.dtype(node.inputs[0])
    if dtype is not None and not (np.issubdtype(dtype, np.floating) or dtype in (np.int32, np.int64)):
        return f"data dtype {dtype}: MIL mul takes fp16, fp32, int32"
    axis = ctx.const(node.inputs[1])
    if axis is None:
        return "axis must be a constant (initializer)"
    axis = int(axis.reshape(-1)[0])
    if not -len(shape) <= axis < len(shape):
        return f"axis {axis} is out of range for rank {len(shape)}"
    n = shape[axis]
    if not isinstance(n, int):
        return "the cumulated axis must have a static length"
    if n == 0:
        return "empty cumulated axis"
    return None
