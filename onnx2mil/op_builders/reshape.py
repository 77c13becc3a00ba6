"""ONNX Reshape (0 = copy the input dim, -1, allowzero) and Flatten -> MIL ``reshape``.

ONNX zeros (copy the input dim) never reach MIL, whose ``0`` only copies a dim when the ranks
agree and whose type inference then declares a 0-size dim: they are resolved from static dims,
or at runtime from ``shape(x)``.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
from coremltools.converters.mil import Builder as mb

from ..backend.convert.registry import op_builder
from ._common import Refuse, is_static, require_layout_dtype, require_rank


def runtime_dim_product(x, begin: int, end: int, tmp, what: str):
    """prod(shape(x)[begin:end]) as a 1-element int32 tensor."""
    dims = mb.slice_by_index(x=mb.shape(x=x, name=tmp(f"{what}_shape")), begin=[begin], end=[end],
                             name=tmp(f"{what}_dims"))
    return mb.reduce_prod(x=dims, axes=[0], keep_dims=True, name=tmp(what))


def _const_target(x, shape: np.ndarray, allowzero: bool, tmp):
    """ONNX target shape -> MIL shape (list of ints, or a runtime int32 vector)."""
    target = [int(v) for v in shape]
    if allowzero:
        return np.array(target, dtype=np.int32)
    unresolved = []
    for i, v in enumerate(target):
        if v == 0:
            d = x.shape[i]
            if isinstance(d, (int, np.integer)):
                target[i] = int(d)
            else:
                unresolved.append(i)
    if not unresolved:
        return np.array(target, dtype=np.int32)
    parts = []
    for i, v in enumerate(target):
        if i in unresolved:
            parts.append(mb.slice_by_index(x=mb.shape(x=x, name=tmp(f"shape{i}")), begin=[i], end=[i + 1],
                                           name=tmp(f"dim{i}")))
        else:
            parts.append(np.array([v], dtype=np.int32))
    return mb.concat(values=parts, axis=0, name=tmp("target"))


def _runtime_target(x, shape, tmp):
    """Runtime ONNX shape: zeros replaced by the input dim at the same index (allowzero=0)."""
    k = shape.shape[0]
    xs = mb.shape(x=x, name=tmp("in_shape"))
    if k <= x.rank:
        dims = mb.slice_by_index(x=xs, begin=[0], end=[k], name=tmp("in_dims"))
    else:  # ONNX forbids a 0 past the input rank; the filler is never selected
        dims = mb.concat(values=[xs, np.ones(k - x.rank, dtype=np.int32)], axis=0, name=tmp("in_dims"))
    is_zero = mb.equal(x=shape, y=np.int32(0), name=tmp("is_zero"))
    return mb.select(cond=is_zero, a=dims, b=shape, name=tmp("target"))


@op_builder("Reshape", min_opset=5)
def reshape(node, ctx):
    x = ctx.input(node, 0)
    out = node.outputs[0]
    allowzero = bool(node.attr("allowzero", 0))
    shape = ctx.const(node.inputs[1])
    if shape is not None:
        target = _const_target(x, shape, allowzero, ctx.tmp)
    else:
        target = ctx.input(node, 1)
        if not allowzero:
            target = _runtime_target(x, target, ctx.tmp)
    ctx.set_output(node, mb.reshape(x=x, shape=target, name=ctx.mil_name(out)))


def _baked_length(node, ctx, target: list, allowzero: bool) -> Optional[str]:
    """A constant target without -1 fixes the element count: an input dim that varies over the
    inputs' bounds (and is not copied by a 0) cannot fit it; the export baked one length."""
    shape = ctx.shape(node.inputs[0])
    if shape is None or is_static(shape):
        return None
    if -1 in target:
        return _indivisible_at_bounds(node, ctx, shape, target, allowzero)
    for i, d in enumerate(shape):
        if isinstance(d, int) or (not allowzero and i < len(target) and target[i] == 0):
            continue
        bounds = ctx.dim_range(node.inputs[0], i)
        if bounds is not None and bounds[0] != bounds[1]:
            return (f"constant target shape {target} fixes the element count, but input dim {i} ({d}) runs "
                    f"{bounds[0]}..{bounds[1]} over the inputs' bounds: the export baked one length "
                    "(export with dynamic axes, or give a static input shape)")
    return None


def _indivisible_at_bounds(node, ctx, shape, target: list, allowzero: bool) -> Optional[str]:
    """With a -1, the other target dims must divide the input's element count; a length baked into
    them (e.g. [1, 79, -1, 16]) divides it at neither the inputs' lower nor upper bounds (a model
    valid on a lattice of lengths, e.g. even ones only, still divides at one of them)."""
    bounds = [ctx.dim_range(node.inputs[0], i) for i in range(len(shape))]
    if any(b is None for b in bounds):
        return None
    found = []
    for end in (0, 1):
        count = int(np.prod([b[end] for b in bounds], dtype=np.int64))
        fixed = [bounds[i][end] if v == 0 and not allowzero else v for i, v in enumerate(target) if v != -1]
        known = int(np.prod(fixed, dtype=np.int64))
        if not known or count % known == 0:
            return None
        found.append(f"{tuple(b[end] for b in bounds)} has {count} elements, not a multiple of {known}")
    return (f"target shape {target}: at the inputs' lower bounds the input {found[0]}, at their upper bounds "
            f"{found[1]}: the export baked one length (export with dynamic axes, or give a static input shape)")


@reshape.check
def _(node, ctx):
    require_layout_dtype(ctx, node.inputs[0])
    shape = ctx.const(node.inputs[1])
    allowzero = bool(node.attr("allowzero", 0))
    if shape is not None:
        if allowzero and 0 in shape.tolist():
            raise Refuse("allowzero=1 with a 0 in the target shape makes a zero-size tensor (CoreML has none)")
        return _baked_length(node, ctx, [int(v) for v in shape.reshape(-1)], allowzero)
    s = ctx.shape(node.inputs[1])
    if s is None or not is_static(s):
        raise Refuse("a runtime target shape needs a known length (the output rank)")
    if allowzero:
        raise Refuse("allowzero=1 with a runtime target shape: a 0 would make a zero-size tensor (CoreML has none)")
    require_rank(ctx, node.inputs[0])


@op_builder("Flatten")
def flatten(node, ctx):
    x = ctx.input(node, 0)
    out = node.outputs[0]
    rank = x.rank
    axis = node.attr("axis", 1)
    axis = axis + rank if axis < 0 else axis
    head, tail = x.shape[:axis], x.shape[axis:]
    if is_static(head) and is_static(tail):
        target = [int(np.prod(head, dtype=np.int64)), int(np.prod(tail, dtype=np.int64))]
    elif is_static(head):
        target = [int(np.prod(head, dtype=np.int64)), -1]
    elif is_static(tail):
        target = [-1, int(np.prod(tail, dtype=np.int64))]
    else:
        target = mb.concat(values=[runtime_dim_product(x, 0, axis, ctx.tmp, "head"),
                                   runtime_dim_product(x, axis, rank, ctx.tmp, "tail")],
                           axis=0, name=ctx.tmp("target"))
    ctx.set_output(node, mb.reshape(x=x, shape=target, name=ctx.mil_name(out)))


@flatten.check
def _(node, ctx):
    require_layout_dtype(ctx, node.inputs[0])
    rank = require_rank(ctx, node.inputs[0])
    axis = node.attr("axis", 1)
    if not -rank <= axis <= rank:
        raise Refuse(f"axis {axis} is outside [-{rank}, {rank}]")
