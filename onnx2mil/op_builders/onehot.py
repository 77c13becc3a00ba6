"""ONNX OneHot (indices, depth, values=[off, on]; negative indices count from the end) -> MIL
``one_hot`` on wrapped int32 indices. ``values`` must be constant (MIL takes constant on/off)."""
from __future__ import annotations

import numpy as np
from coremltools.converters.mil import Builder as mb
from coremltools.converters.mil.mil import types

from ..backend.convert.context import mil_dtype_of
from ..backend.convert.registry import op_builder
from ._common import Refuse, require_const, require_rank


@op_builder("OneHot", min_opset=9)
def one_hot(node, ctx):
    out = node.outputs[0]

    indices = ctx.input(node, 0)
    if indices.dtype != types.int32:
        indices = mb.cast(x=indices, dtype="int32", name=ctx.tmp("indices_int32"))
    depth_const = ctx.const(node.inputs[1])
    if depth_const is not None:
        depth = np.int32(depth_const.reshape(-1)[0])
    else:
        depth = ctx.input(node, 1)
        if depth.dtype != types.int32:
            depth = mb.cast(x=depth, dtype="int32", name=ctx.tmp("depth_int32"))
        if depth.rank:
            depth = mb.reshape(x=depth, shape=np.zeros(0, np.int32), name=ctx.tmp("depth"))
    shifted = mb.add(x=indices, y=depth, name=ctx.tmp("wrapped"))
    indices = mb.select(cond=mb.less(x=indices, y=np.int32(0), name=ctx.tmp("negative")), a=shifted, b=indices,
                        name=ctx.tmp("indices"))
    off, on = mil_dtype_of(ctx.const(node.inputs[2]).reshape(-1))
    y = mb.one_hot(indices=indices, one_hot_vector_size=depth, axis=node.attr("axis", -1), on_value=on,
                   off_value=off, name=ctx.mil_name(out))
    ctx.set_output(node, y)


@one_hot.check
def _(node, ctx):
    rank = require_rank(ctx, node.inputs[0], "indices")
    values = require_const(ctx, node.inputs[2], "values", "MIL one_hot takes constant on/off values")
    if values.size != 2:
        raise Refuse(f"values has {values.size} elements, not 2")
    if np.dtype(mil_dtype_of(values).dtype) not in (np.float32, np.float16, np.int32, np.bool_):
        raise Refuse(f"values dtype {values.dtype} has no MIL equivalent")
    depth = ctx.const(node.inputs[1])
    if depth is not None and int(depth.reshape(-1)[0]) < 1:
        raise Refuse(f"depth {depth.reshape(-1)[0]} gives an empty result")
    axis = node.attr("axis", -1)
    if not -rank - 1 <= axis <= rank:
        raise Refuse(f"axis {axis} is out of range for output rank {rank + 1}")
