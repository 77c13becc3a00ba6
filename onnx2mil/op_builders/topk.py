"""ONNX TopK (``k`` attribute before opset 10, constant K input after; ``largest``/``sorted`` from
11) -> MIL ``topk``. Results are always sorted, which ``sorted=0`` allows."""
from __future__ import annotations

from coremltools.converters.mil import Builder as mb

from ..backend.convert.registry import op_builder
from ._common import Refuse, require_axis, require_const, require_float_or_int, require_shape


def _k(node, ctx) -> int:
    if node.opset < 10:
        return int(node.attr("k"))
    return int(ctx.const(node.inputs[1]).reshape(-1)[0])


@op_builder("TopK")
def topk(node, ctx):
    x = ctx.input(node, 0)
    axis = node.attr("axis", -1)
    ascending = node.opset >= 11 and node.attr("largest", 1) == 0
    values, indices = mb.topk(x=x, k=_k(node, ctx), axis=axis, ascending=ascending,
                              name=ctx.tmp("topk"))
    values.name = ctx.mil_name(node.outputs[0])  # MIL names a multi-output op's vars "<op>_<k>"
    indices.name = ctx.mil_name(node.outputs[1])
    ctx.set_output(node, values, indices)


@topk.check
def _(node, ctx):
    shape = require_shape(ctx, node.inputs[0])
    require_float_or_int(ctx, node.inputs[0], "MIL topk takes fp16, fp32, int32")
    if node.opset >= 10:

        require_const(ctx, node.inputs[1], "K", "MIL topk takes a constant k")
    axis = node.attr("axis", -1)
    require_axis(axis, len(shape))
    k, d = _k(node, ctx), shape[axis]
    if k < 1:
        raise Refuse(f"k={k} gives an empty result (CoreML has no zero-size tensors)")
    if isinstance(d, int) and k > d:
        raise Refuse(f"k={k} is larger than axis size {d}")
