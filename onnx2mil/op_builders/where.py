"""ONNX Where(condition, X, Y) -> MIL ``select(cond, a, b)``, broadcasting all three; small-int
values (iOS17+) are selected in int32."""
from __future__ import annotations

from coremltools.converters.mil import Builder as mb

from coremltools.converters.mil.mil import types

from ..backend.convert.registry import op_builder
from ._common import const_like, require_kinds, widen


def _cond_widens(cond, a, b) -> bool:
    """MIL select types its output by broadcasting a and b only: does cond's shape add to that?"""
    rank = max(a.rank, b.rank)
    if cond.rank > rank:
        return True
    ab = [1] * rank
    for shape in (a.shape, b.shape):
        for i, d in enumerate(shape, start=rank - len(shape)):
            ab[i] = d if ab[i] == 1 else ab[i]
    return any(c != 1 and c != d for c, d in zip(cond.shape, ab[rank - cond.rank:]))


def _broadcast_like(a, cond, scratch):
    """``a`` broadcast to broadcast(a, cond): a + 0 with a cond-shaped zero (or `a or False`)."""
    if a.dtype == types.bool:
        never = mb.logical_and(x=cond, y=False, name=scratch("never"))
        return mb.logical_or(x=a, y=never, name=scratch("a_full"))
    zeros = mb.mul(x=mb.cast(x=cond, dtype=types.builtin_to_string(a.dtype), name=scratch("cond_as_a")),
                   y=const_like(0, a), name=scratch("zeros"))
    return mb.add(x=a, y=zeros, name=scratch("a_full"))


@op_builder("Where", min_opset=9)
def where(node, ctx):
    out = node.outputs[0]
    (a, b), back = widen([ctx.input(node, 1), ctx.input(node, 2)], ctx.tmp)
    name = ctx.mil_name(out)
    cond = ctx.input(node, 0)
    if _cond_widens(cond, a, b):
        a = _broadcast_like(a, cond, ctx.tmp)
    y = mb.select(cond=cond, a=a, b=b, name=ctx.tmp("int32") if back else name)
    ctx.set_output(node, mb.cast(x=y, dtype=back, name=name) if back else y)


@where.check
def _(node, ctx):
    require_kinds(ctx, node.inputs[:1], ("bool",))
    require_kinds(ctx, node.inputs[1:], ("float", "int", "bool"), widens_small_ints=True)
