"""ONNX Gather / GatherElements / GatherND and ScatterND / ScatterElements (/ Scatter) -> MIL
``gather`` / ``gather_along_axis`` / ``gather_nd`` / ``scatter_nd`` / ``scatter_along_axis``.

ONNX allows negative indices; MIL ``gather`` does before iOS17 only, the other ops never: constant
indices are wrapped here, runtime ones with ``select(i < 0, i + dim, i)``. Bool data goes
through int32 (MIL gathers/scatters fp16, fp32, int32).
"""
from __future__ import annotations

import coremltools as ct
import numpy as np
from coremltools.converters.mil import Builder as mb
from coremltools.converters.mil.mil import types

from ..backend.convert.registry import op_builder
from ._common import Refuse, kind, require_axis, require_rank

_REDUCTIONS = {"none": "update", "add": "add", "mul": "mul", "max": "max", "min": "min"}


def _dims(x, axes, tmp):
    """x.shape[axes] (an int axis gives a scalar) as a constant int32 array, or at runtime if any
    dim is symbolic."""
    dims = [x.shape[a] for a in np.atleast_1d(axes)]
    if all(isinstance(d, (int, np.integer)) for d in dims):
        return np.array(dims, dtype=np.int32).reshape(np.shape(axes))
    return mb.gather(x=mb.shape(x=x, name=tmp("shape")), indices=np.array(axes, np.int32), axis=0,
                     name=tmp("dims"))


def wrap_indices(ctx, name: str, dims, tmp):
    """Indices with negatives wrapped by ``dims`` (broadcast against the last axis)."""
    const = ctx.const(name)
    if const is not None and not isinstance(dims, np.ndarray):
        const = None  # symbolic dims: wrap at runtime
    if const is not None:
        idx = const.astype(np.int64)
        return np.where(idx < 0, idx + dims.astype(np.int64), idx).astype(np.int32)
    idx = ctx.var(name)
    if idx.dtype != types.int32:
        idx = mb.cast(x=idx, dtype="int32", name=tmp("int32"))
    shifted = mb.add(x=idx, y=dims, name=tmp("wrapped"))
    return mb.select(cond=mb.less(x=idx, y=np.int32(0), name=tmp("negative")), a=shifted, b=idx,
                     name=tmp("indices"))


def _data(ctx, name, tmp):
    x = ctx.var(name)
    return mb.cast(x=x, dtype="int32", name=tmp("as_int32")) if x.dtype == types.bool else x


def _emit(node, ctx, fn):
    """Run ``fn(ctx.tmp, x, name)``; casts bool data to int32 and back around it."""
    out = node.outputs[0]

    x = _data(ctx, node.inputs[0], ctx.tmp)
    is_bool = x is not ctx.var(node.inputs[0])
    y = fn(ctx.tmp, x, ctx.tmp("int32_result") if is_bool else ctx.mil_name(out))
    ctx.set_output(node, mb.cast(x=y, dtype="bool", name=ctx.mil_name(out)) if is_bool else y)


def _require_data(node, ctx) -> int:
    """The data input's rank; refuses an unknown rank or a dtype MIL cannot gather."""
    rank = require_rank(ctx, node.inputs[0], "data")
    dtype = ctx.dtype(node.inputs[0])
    if dtype is not None and kind(dtype) not in ("float", "int", "bool"):
        raise Refuse(f"data dtype {dtype}: MIL gathers and scatters fp16, fp32, int32 (and bool via int32)")
    return rank


def _axis(node, ctx):
    axis = node.attr("axis", 0)
    rank = ctx.rank(node.inputs[0])
    return axis + rank if axis < 0 else axis


@op_builder("Gather")
def gather(node, ctx):
    axis = _axis(node, ctx)

    def emit(tmp, x, name):
        if ctx.is_const(node.inputs[1]) or ctx.target >= ct.target.iOS17:
            indices = wrap_indices(ctx, node.inputs[1], _dims(x, axis, tmp), tmp)
        else:  # MIL gather takes negative runtime indices before iOS17
            indices = ctx.var(node.inputs[1])
        return mb.gather(x=x, indices=indices, axis=axis, name=name)

    _emit(node, ctx, emit)


@gather.check
def _(node, ctx):
    require_axis(node.attr("axis", 0), _require_data(node, ctx))


@op_builder("GatherElements", min_opset=11)
def gather_elements(node, ctx):
    axis = _axis(node, ctx)
    _emit(node, ctx, lambda tmp, x, name: mb.gather_along_axis(
        x=x, indices=wrap_indices(ctx, node.inputs[1], _dims(x, axis, tmp), tmp), axis=axis, name=name))


@gather_elements.check
def _(node, ctx):
    _require_data(node, ctx)


@op_builder("GatherND", min_opset=11)
def gather_nd(node, ctx):
    batch_dims = node.attr("batch_dims", 0)

    def emit(tmp, x, name):
        shape = ctx.shape(node.inputs[1])
        indices = wrap_indices(ctx, node.inputs[1], _dims(x, list(range(batch_dims, batch_dims + shape[-1])), tmp),
                               tmp)
        if batch_dims:  # prepend each index's batch position: a plain gather_nd on any target
            grid = np.moveaxis(np.indices(shape[:-1], dtype=np.int32)[:batch_dims], 0, -1)
            if isinstance(indices, np.ndarray):
                indices = np.concatenate([grid, indices], axis=-1)
            else:
                indices = mb.concat(values=[grid, indices], axis=-1, name=tmp("coordinates"))
        return mb.gather_nd(x=x, indices=indices, name=name)

    _emit(node, ctx, emit)


@gather_nd.check
def _(node, ctx):
    _require_data(node, ctx)
    shape = ctx.shape(node.inputs[1])
    if shape is None or not isinstance(shape[-1], int):
        raise Refuse("the last dim of indices (the index depth) must be known")
    if node.attr("batch_dims", 0) and any(not isinstance(d, int) for d in shape):
        raise Refuse("batch_dims needs a static indices shape")


@op_builder("ScatterElements", "Scatter", min_opset=9)
def scatter_elements(node, ctx):
    axis = _axis(node, ctx)
    mode = _REDUCTIONS[node.attr("reduction", "none")]

    def emit(tmp, x, name):
        updates = _data(ctx, node.inputs[2], lambda what: tmp(f"updates_{what}"))
        indices = wrap_indices(ctx, node.inputs[1], _dims(x, axis, tmp), tmp)
        if _same_outer_dims(node, ctx):
            return mb.scatter_along_axis(data=x, indices=indices, updates=updates, axis=axis, mode=mode,
                                         name=name)
        coords = _element_coordinates(indices, ctx.shape(node.inputs[1]), axis, tmp)
        return mb.scatter_nd(data=x, indices=coords, updates=updates, mode=mode, name=name)

    _emit(node, ctx, emit)


def _same_outer_dims(node, ctx) -> bool:
    """MIL scatter_along_axis needs indices to match data on every dim but ``axis``."""
    axis = _axis(node, ctx)
    data, indices = ctx.shape(node.inputs[0]), ctx.shape(node.inputs[1])
    return all(data[i] == indices[i] for i in range(len(data)) if i != axis)


def _element_coordinates(indices, shape, axis: int, tmp):
    """ScatterElements indices as full scatter_nd coordinates [*shape, rank]: the position of each
    index, with ``axis`` replaced by the index itself."""
    grid = np.moveaxis(np.indices(shape, dtype=np.int32), 0, -1)
    if isinstance(indices, np.ndarray):
        grid[..., axis] = indices
        return grid
    pieces = [grid[..., :axis], mb.expand_dims(x=indices, axes=[-1], name=tmp("index_column")),
              grid[..., axis + 1:]]
    pieces = [p for p in pieces if not isinstance(p, np.ndarray) or p.shape[-1]]
    return mb.concat(values=pieces, axis=-1, name=tmp("coordinates"))


@op_builder("ScatterND", min_opset=11)
def scatter_nd(node, ctx):
    mode = _REDUCTIONS[node.attr("reduction", "none")]

    def emit(tmp, x, name):
        updates = _data(ctx, node.inputs[2], lambda what: tmp(f"updates_{what}"))
        k = ctx.shape(node.inputs[1])[-1]
        indices = wrap_indices(ctx, node.inputs[1], _dims(x, list(range(k)), tmp), tmp)
        return mb.scatter_nd(data=x, indices=indices, updates=updates, mode=mode, name=name)

    _emit(node, ctx, emit)


def _scatter_refusal(node, ctx):
    _require_data(node, ctx)
    if node.op_type == "Scatter" and node.opset > 10:
        return "Scatter is removed after opset 10 (use ScatterElements)"
    reduction = node.attr("reduction", "none")
    if reduction not in _REDUCTIONS:
        return f"reduction '{reduction}' has no MIL scatter mode"
    if reduction != "none" and ctx.dtype(node.inputs[0]) == np.bool_:
        return f"reduction '{reduction}' on bool data"
    shape = ctx.shape(node.inputs[1])
    if node.op_type == "ScatterND":
        if shape is None or not isinstance(shape[-1], int):
            return "the last dim of indices (the index depth) must be known"
    elif shape is None or (not _same_outer_dims(node, ctx) and any(not isinstance(d, int) for d in shape)):
        return "indices smaller than data on a non-axis dim need a static indices shape"
    elif all(n in ctx.graph.inputs for n in node.inputs[:2]) and any(
            not isinstance(d, int) for i, d in enumerate(shape) if i != _axis(node, ctx)):
        # the saved program gives each flexible input its own symbols: the tie is lost on loading
        return ("data and indices are both flexible graph inputs with symbolic non-axis dims: MIL "
                "scatter_along_axis needs them provably equal, which a saved model cannot record")
    return None


scatter_elements.check(_scatter_refusal)
scatter_nd.check(_scatter_refusal)
