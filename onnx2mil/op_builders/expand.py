"""ONNX Expand (bidirectional broadcast) -> MIL ``expand_dims`` + ``tile`` for a constant target
shape, ``mul`` by a ``fill`` of ones for a runtime one; Tile -> MIL ``tile``."""
from __future__ import annotations

import numpy as np
from coremltools.converters.mil import Builder as mb
from coremltools.converters.mil.mil import types

from ..backend.convert.registry import op_builder
from ._common import Refuse, require_layout_dtype, require_rank, require_shape


_ONES = {types.fp32: np.float32(1), types.fp16: np.float16(1), types.int32: np.int32(1), types.bool: True}


def _tile_reps(x_shape, target, tmp, x):
    """Per-dim repeats to broadcast ``x_shape`` (already at the output rank) to ``target``."""
    reps, runtime = [], False
    for i, (d, t) in enumerate(zip(x_shape, target)):
        if t == 1 or (isinstance(d, int) and d == t):
            reps.append(1)
        elif isinstance(d, int) and d == 1:
            reps.append(int(t))
        else:  # symbolic dim, which ONNX requires to be 1 or t: repeat t // dim times
            runtime = True
            dim = mb.slice_by_index(x=mb.shape(x=x, name=tmp(f"shape{i}")), begin=[i], end=[i + 1],
                                    name=tmp(f"dim{i}"))
            reps.append(mb.floor_div(x=np.array([t], np.int32), y=dim, name=tmp(f"reps{i}")))
    if not runtime:
        return reps
    pieces = [r if not isinstance(r, int) else np.array([r], np.int32) for r in reps]
    return mb.concat(values=pieces, axis=0, name=tmp("reps"))


@op_builder("Expand", min_opset=8)
def expand(node, ctx):
    x = ctx.input(node, 0)
    out = node.outputs[0]

    target = ctx.const(node.inputs[1])
    if target is None:
        ones = mb.fill(shape=ctx.input(node, 1), value=_ONES[x.dtype], name=ctx.tmp("ones"))
        op = mb.logical_and if x.dtype == types.bool else mb.mul
        ctx.set_output(node, op(x=x, y=ones, name=ctx.mil_name(out)))
        return
    target = [int(t) for t in target]
    rank = max(x.rank, len(target))
    target = [1] * (rank - len(target)) + target
    if x.rank < rank:
        x = mb.expand_dims(x=x, axes=list(range(rank - x.rank)), name=ctx.tmp("rank"))
    reps = _tile_reps(x.shape, target, ctx.tmp, x)
    if isinstance(reps, list):
        if all(r == 1 for r in reps):
            y = mb.identity(x=x, name=ctx.mil_name(out))
        else:
            y = mb.tile(x=x, reps=reps, name=ctx.mil_name(out))
        ctx.set_output(node, y)
        return
    # Runtime repeats leave symbolic dims where ONNX knows the size: restate the known shape.
    y = mb.tile(x=x, reps=reps, name=ctx.tmp("tile"))
    known = [t if t != 1 else d for d, t in zip(x.shape, target)]
    if all(isinstance(d, (int, np.integer)) for d in known):
        y = mb.reshape(x=y, shape=np.array(known, np.int32), name=ctx.mil_name(out))
    else:
        y = mb.identity(x=y, name=ctx.mil_name(out))
    ctx.set_output(node, y)


@expand.check
def _(node, ctx):
    require_layout_dtype(ctx, node.inputs[0])
    shape = require_shape(ctx, node.inputs[0])
    target = ctx.const(node.inputs[1])
    if target is None:
        t = ctx.shape(node.inputs[1])
        if t is None or not isinstance(t[0], int):
            raise Refuse("the length of a runtime target shape (the output rank) must be known")
        return None
    target = [int(v) for v in target]
    if 0 in target:
        raise Refuse("a 0 in the target shape makes a zero-size tensor (CoreML has none)")
    padded = [1] * (len(target) - len(shape)) + list(shape)
    for d, t in zip(padded[-len(target):], target):
        if isinstance(d, int) and d != 1 and t != 1 and d != t:
            raise Refuse(f"dim {d} does not broadcast to {t}")


@op_builder("Tile", min_opset=6)
def tile(node, ctx):
    reps = ctx.const(node.inputs[1])
    reps = [int(r) for r in reps] if reps is not None else ctx.input(node, 1)
    ctx.set_output(node, mb.tile(x=ctx.input(node, 0), reps=reps, name=ctx.mil_name(node.outputs[0])))


@tile.check
def _(node, ctx):
    require_layout_dtype(ctx, node.inputs[0])
    require_rank(ctx, node.inputs[0])
    reps = ctx.const(node.inputs[1])
    if reps is not None and 0 in reps.tolist():
        raise Refuse("a repeat of 0 makes a zero-size tensor (CoreML has none)")
