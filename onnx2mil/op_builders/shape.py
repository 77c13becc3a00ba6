"""ONNX Shape (``start``/``end`` from opset 15) and Size of tensors with symbolic dims -> MIL
``shape`` (+ ``slice_by_index``) and ``reduce_prod``. Static ones are folded by the loader."""
from __future__ import annotations

from coremltools.converters.mil import Builder as mb

from ..backend.convert.registry import op_builder
from ._common import Refuse, require_rank


def _bounds(node, rank: int) -> tuple[int, int]:
    start = node.attr("start", 0) if node.opset >= 15 else 0
    end = node.attr("end", rank) if node.opset >= 15 else rank
    start = min(max(start + rank if start < 0 else start, 0), rank)
    end = min(max(end + rank if end < 0 else end, 0), rank)
    return start, end


@op_builder("Shape")
def shape(node, ctx):
    x = ctx.input(node, 0)
    out = node.outputs[0]
    start, end = _bounds(node, x.rank)
    if (start, end) == (0, x.rank):
        ctx.set_output(node, mb.shape(x=x, name=ctx.mil_name(out)))
        return
    full = mb.shape(x=x, name=ctx.tmp("full"))
    ctx.set_output(node, mb.slice_by_index(x=full, begin=[start], end=[end], name=ctx.mil_name(out)))


@shape.check
def _(node, ctx):
    rank = require_rank(ctx, node.inputs[0])
    start, end = _bounds(node, rank)
    if end <= start:
        raise Refuse(f"start {start} / end {end} give an empty shape (CoreML has no zero-size tensors)")


@op_builder("Size")
def size(node, ctx):
    x = ctx.input(node, 0)
    out = node.outputs[0]
    dims = mb.shape(x=x, name=ctx.tmp("shape"))
    ctx.set_output(node, mb.reduce_prod(x=dims, axes=[0], keep_dims=False, name=ctx.mil_name(out)))


@size.check
def _(node, ctx):
    rank = ctx.rank(node.inputs[0])
    if not rank:
        raise Refuse("input rank is unknown" if rank is None else "Size of a scalar is folded, not built")
