"""ONNX comparisons (Equal Less Greater LessOrEqual GreaterOrEqual) -> MIL ``equal``/``less``/...
with NumPy broadcasting; a bool tensor out. MIL compares numbers only, so bool Equal is
``logical_not(logical_xor(a, b))``; small ints (iOS17+) are compared in int32.
"""
from __future__ import annotations

from coremltools.converters.mil import Builder as mb
from coremltools.converters.mil.mil import types

from ..backend.convert.registry import op_builder
from ._common import Refuse, require_kinds, widen

_MIL = {"Equal": "equal", "Less": "less", "Greater": "greater",
        "LessOrEqual": "less_equal", "GreaterOrEqual": "greater_equal"}


@op_builder(*_MIL, min_opset=7)
def comparison(node, ctx):
    out = node.outputs[0]
    (a, b), _ = widen([ctx.input(node, 0), ctx.input(node, 1)], ctx.tmp)
    name = ctx.mil_name(out)
    if types.is_bool(a.dtype):
        y = mb.logical_not(x=mb.logical_xor(x=a, y=b, name=ctx.tmp("differ")), name=name)
    else:
        y = getattr(mb, _MIL[node.op_type])(x=a, y=b, name=name)
    ctx.set_output(node, y)


@comparison.check
def _(node, ctx):
    if node.op_type in ("LessOrEqual", "GreaterOrEqual") and node.opset < 12:
        raise Refuse(f"{node.op_type} exists from opset 12")
    allowed = ("float", "int", "bool") if node.op_type == "Equal" else ("float", "int")
    require_kinds(ctx, node.inputs, allowed, widens_small_ints=True)
