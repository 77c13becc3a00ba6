"""ONNX ConstantOfShape -> MIL ``fill``; Range -> ``range_1d``; EyeLike -> a constant (static
shape) or ``equal(col - row, k)`` on ``range_1d`` grids (symbolic shape). All-constant nodes are
folded by the loader, so these see runtime shapes and bounds."""
from __future__ import annotations

import numpy as np
from coremltools.converters.mil import Builder as mb
from onnx import helper, numpy_helper

from ..backend.convert.context import mil_dtype_of
from ..backend.convert.registry import op_builder
from ._common import Refuse

_MIL_DTYPES = {np.dtype(np.float32): "fp32", np.dtype(np.float16): "fp16", np.dtype(np.int32): "int32",
               np.dtype(np.bool_): "bool"}


def _fill_value(node) -> np.ndarray:
    value = node.attr("value")
    if value is None:
        return np.float32(0.0)
    return mil_dtype_of(numpy_helper.to_array(value).reshape(-1))[0]


@op_builder("ConstantOfShape", min_opset=9)
def constant_of_shape(node, ctx):
    value = _fill_value(node)
    ctx.set_output(node, mb.fill(shape=ctx.input(node, 0), value=value, name=ctx.mil_name(node.outputs[0])))


@constant_of_shape.check
def _(node, ctx):
    value = node.attr("value")
    if value is not None:
        array = numpy_helper.to_array(value)
        if array.size != 1:
            raise Refuse(f"value has {array.size} elements, not 1")
        if np.dtype(mil_dtype_of(array).dtype) not in _MIL_DTYPES:
            raise Refuse(f"value dtype {array.dtype} has no MIL fill equivalent (fp16, fp32, int32, bool)")
    shape = ctx.shape(node.inputs[0])
    if shape is None or not isinstance(shape[0], int):
        raise Refuse("the length of the shape input (the output rank) must be known")


@op_builder("Range", min_opset=11)
def range_(node, ctx):
    out = node.outputs[0]
    bounds = []
    for i, what in enumerate(("start", "limit", "delta")):
        const = ctx.const(node.inputs[i])
        bounds.append(mil_dtype_of(const.reshape(())) if const is not None else ctx.var(node.inputs[i]))
    start, end, step = bounds
    ctx.set_output(node, mb.range_1d(start=start, end=end, step=step, name=ctx.mil_name(out)))


@range_.check
def _(node, ctx):
    dtype = ctx.dtype(node.inputs[0])
    if dtype is not None and np.dtype(mil_dtype_of(np.zeros(0, dtype)).dtype) not in (np.float32, np.int32):
        raise Refuse(f"dtype {dtype} (MIL range_1d takes fp32 or int32)")
    for i in range(3):
        if ctx.rank(node.inputs[i]) not in (0, None):
            raise Refuse("start, limit and delta must be scalars")


def _eye_dtype(node, ctx) -> np.dtype:
    dtype = node.attr("dtype")
    np_dtype = helper.tensor_dtype_to_np_dtype(dtype) if dtype is not None else ctx.dtype(node.inputs[0])
    return mil_dtype_of(np.zeros(0, np_dtype)).dtype


@op_builder("EyeLike", min_opset=9)
def eye_like(node, ctx):
    x = ctx.input(node, 0)
    out = node.outputs[0]
    k = node.attr("k", 0)
    dtype = _eye_dtype(node, ctx)
    rows, cols = x.shape
    if isinstance(rows, int) and isinstance(cols, int):
        ctx.set_output(node, mb.const(val=np.eye(rows, cols, k, dtype=dtype), name=ctx.mil_name(out)))
        return

    dims = mb.shape(x=x, name=ctx.tmp("shape"))
    row = mb.range_1d(start=np.int32(0), end=mb.gather(x=dims, indices=np.int32(0), name=ctx.tmp("rows")),
                      step=np.int32(1), name=ctx.tmp("row"))
    col = mb.range_1d(start=np.int32(0), end=mb.gather(x=dims, indices=np.int32(1), name=ctx.tmp("cols")),
                      step=np.int32(1), name=ctx.tmp("col"))
    offset = mb.sub(x=col, y=mb.expand_dims(x=row, axes=[1], name=ctx.tmp("row_column")), name=ctx.tmp("offset"))
    on_diagonal = mb.equal(x=offset, y=np.int32(k), name=ctx.tmp("on_diagonal"))
    if dtype != np.bool_:
        on_diagonal = mb.cast(x=on_diagonal, dtype=_MIL_DTYPES[np.dtype(dtype)], name=ctx.tmp("cast"))
    ctx.set_output(node, on_diagonal)


@eye_like.check
def _(node, ctx):
    if ctx.rank(node.inputs[0]) != 2:
        raise Refuse("input must be 2-D")
    dtype = _eye_dtype(node, ctx)
    if np.dtype(dtype) not in _MIL_DTYPES:
        raise Refuse(f"output dtype {dtype} has no MIL equivalent")
