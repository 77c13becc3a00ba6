"""ONNX Slice (attributes before opset 10; starts/ends/axes/steps inputs from 10) -> MIL
``slice_by_index``. Static dims get ONNX's clamping resolved here (it differs from Python's for
a negative step); masks stand for "from the edge", so INT_MAX/INT_MIN ends never reach MIL."""
from __future__ import annotations

from typing import Optional

import numpy as np
from coremltools.converters.mil import Builder as mb

from ..backend.convert.registry import op_builder
from ._common import Refuse, require_const, require_layout_dtype, require_shape

_I32_MAX = np.iinfo(np.int32).max
_I32_MIN = np.iinfo(np.int32).min


def _param(node, ctx, attr: str, index: int) -> Optional[np.ndarray]:
    if node.opset < 10:
        value = node.attr(attr)
        return None if value is None else np.array(value, dtype=np.int64)
    return ctx.const(node.inputs[index]) if node.has_input(index) else None


def _axes_steps(node, ctx, rank: int, n: int):
    axes = _param(node, ctx, "axes", 3)
    axes = list(range(n)) if axes is None else [int(a) + rank if a < 0 else int(a) for a in axes]
    steps = _param(node, ctx, "steps", 4) if node.opset >= 10 else None
    steps = [1] * n if steps is None else [int(s) for s in steps]
    return axes, steps


def clamp_static(start: int, end: int, step: int, dim: int) -> tuple[int, int]:
    """ONNX's clamping of start/end on a dim of known size."""
    start = start + dim if start < 0 else start
    end = end + dim if end < 0 else end
    if step > 0:
        return min(max(start, 0), dim), min(max(end, 0), dim)
    return min(max(start, 0), dim - 1), min(max(end, -1), dim - 1)


def slice_length(start: int, end: int, step: int) -> int:
    return max(0, -(-(end - start) // step)) if step > 0 else max(0, -(-(start - end) // -step))


def mil_bounds(start: int, end: int, step: int, dim) -> tuple[int, int, bool, bool]:
    """(begin, end, begin_mask, end_mask) for MIL, whose masks and negative indices follow Python."""
    if isinstance(dim, (int, np.integer)):
        start, end = clamp_static(start, end, step, int(dim))
        return start, (0 if end == -1 else end), False, step < 0 and end == -1
    begin_mask = start >= _I32_MAX if step < 0 else False
    end_mask = end <= _I32_MIN if step < 0 else end >= _I32_MAX
    clip = lambda v: int(min(max(v, _I32_MIN), _I32_MAX))  # noqa: E731
    return (0 if begin_mask else clip(start)), (0 if end_mask else clip(end)), begin_mask, end_mask


@op_builder("Slice")
def slice_(node, ctx):
    x = ctx.input(node, 0)
    out = node.outputs[0]
    rank = x.rank
    starts, ends = _param(node, ctx, "starts", 1), _param(node, ctx, "ends", 2)
    n = len(starts) if starts is not None else ctx.shape(node.inputs[1])[0]
    axes, steps = _axes_steps(node, ctx, rank, n)
    begin, end = [0] * rank, [0] * rank
    stride, begin_mask, end_mask = [1] * rank, [True] * rank, [True] * rank
    clamped_begin = {}  # axis -> start: a negative step from below -1 on a symbolic dim
    for k, a in enumerate(axes):
        stride[a] = steps[k]
        if starts is not None and ends is not None:
            begin[a], end[a], begin_mask[a], end_mask[a] = mil_bounds(int(starts[k]), int(ends[k]), steps[k],
                                                                      x.shape[a])
            if not isinstance(x.shape[a], (int, np.integer)) and steps[k] < 0 and -_I32_MAX < int(starts[k]) < -1:
                clamped_begin[a] = int(starts[k])
        else:
            begin_mask[a] = end_mask[a] = False
    if starts is None or ends is None:
        begin, end = (_runtime_bounds(node, ctx, i, axes, rank, what) for i, what in ((1, "begin"), (2, "end")))
    elif clamped_begin:
        begin = _clamped_begin(x, begin, clamped_begin, ctx.tmp)
    ctx.set_output(node, mb.slice_by_index(x=x, begin=begin, end=end, stride=stride, begin_mask=begin_mask,
                                           end_mask=end_mask, name=ctx.mil_name(out)))


def _clamped_begin(x, begin: list, clamped: dict, tmp):
    """ONNX clamps a negative-step start below -dim to 0 (Python would make the slice empty):
    begin[a] = max(start + dim, 0) at runtime."""
    shape = mb.shape(x=x, name=tmp("shape"))
    pieces = []
    for a, b in enumerate(begin):
        if a in clamped:
            dim = mb.slice_by_index(x=shape, begin=[a], end=[a + 1], name=tmp(f"dim{a}"))
            shifted = mb.add(x=dim, y=np.int32(clamped[a]), name=tmp(f"begin{a}_shifted"))
            pieces.append(mb.maximum(x=shifted, y=np.int32(0), name=tmp(f"begin{a}")))
        else:
            pieces.append(np.array([b], np.int32))
    return mb.concat(values=pieces, axis=0, name=tmp("begin"))


def _runtime_bounds(node, ctx, index: int, axes: list[int], rank: int, what: str):
    """A full-rank bound vector from runtime per-axis values (unsliced axes are masked)."""
    values = ctx.input(node, index)
    pieces = []
    for a in range(rank):
        if a in axes:
            k = axes.index(a)
            pieces.append(mb.slice_by_index(x=values, begin=[k], end=[k + 1], name=ctx.tmp(f"{what}{a}")))
        else:
            pieces.append(np.zeros(1, dtype=np.int32))
    return mb.concat(values=pieces, axis=0, name=ctx.tmp(f"{what}"))


@slice_.check
def _(node, ctx):
    require_layout_dtype(ctx, node.inputs[0])
    shape = require_shape(ctx, node.inputs[0])
    rank = len(shape)
    if node.opset >= 10:
        for i, what in ((3, "axes"), (4, "steps")):
            if node.has_input(i):

                require_const(ctx, node.inputs[i], what)
    starts, ends = _param(node, ctx, "starts", 1), _param(node, ctx, "ends", 2)
    runtime = starts is None or ends is None
    if runtime:
        lens = [ctx.shape(node.inputs[i]) for i in (1, 2)]
        if any(s is None or not isinstance(s[0], int) for s in lens):
            raise Refuse("runtime starts/ends need a known length")
        n = lens[0][0]
    else:
        n = len(starts)
    axes, steps = _axes_steps(node, ctx, rank, n)
    if any(not 0 <= a < rank for a in axes) or len(set(axes)) != len(axes):
        raise Refuse(f"axes {axes} are out of range or repeated for rank {rank}")
    if 0 in steps:
        raise Refuse("a step of 0")
    if runtime:
        if any(s < 0 for s in steps):
            raise Refuse("runtime starts/ends with a negative step: ONNX clamping differs from MIL's and is unknown")
        return None
    for k, a in enumerate(axes):
        s, e, t, d = int(starts[k]), int(ends[k]), steps[k], shape[a]
        if isinstance(d, int):
            if slice_length(*clamp_static(s, e, t, d), t) == 0:
                raise Refuse(f"slice of axis {a} is empty (CoreML has no zero-size tensors)")
