"""ONNX Concat -> MIL ``concat`` (constant operands cast to MIL dtypes, int64 -> int32)."""
from __future__ import annotations

from coremltools.converters.mil import Builder as mb

from ..backend.convert.registry import op_builder
from ._common import Refuse, require_layout_dtype


@op_builder("Concat", min_opset=4)
def concat(node, ctx):
    values = [ctx.var(name) for name in node.inputs if name]
    axis = node.attr("axis")
    name = ctx.mil_name(node.outputs[0])
    y = mb.identity(x=values[0], name=name) if len(values) == 1 else mb.concat(values=values, axis=axis, name=name)
    ctx.set_output(node, y)


@concat.check
def _(node, ctx):
    require_layout_dtype(ctx, node.inputs[0])
    ranks = {ctx.rank(n) for n in node.inputs if n}
    if None in ranks:
        raise Refuse("an input rank is unknown")
    if len(ranks) != 1:
        raise Refuse(f"inputs have different ranks {sorted(ranks)}")
    rank = ranks.pop()
    axis = node.attr("axis")
    if axis is None or not -rank <= axis < rank:
        raise Refuse(f"axis {axis} is out of range for rank {rank}")
