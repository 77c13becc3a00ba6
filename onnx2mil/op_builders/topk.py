"""ONNX TopK (``k`` attribute before opset 10, constant K input after; ``largest``/``sorted`` from
11) -> MIL ``topk``. Results are always sorted, which ``sorted=0`` allows."""
from __future__ import annotations

import numpy as np
from coremltools.converters.mil import Builder as mb

from ..backend.convert.registry import op_builder


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
                              name=ctx.scratch(f"{node.name}_topk"))
    values.name = ctx.mil_name(node.outputs[0])  # MIL names a multi-output op's vars "<op>_<k>"
    indices.name = ctx.mil_name(node.outputs[1])
    ctx.set_output(node, values, indices)


@topk.check
def _(node, ctx):
    shape = ctx.shape(node.inputs[0])
    if shape is None:
        return "input rank is unknown"
    dtype = ctx.dtype(node.inputs[0])
    if dtype is not None and not (np.issubdtype(dtype, np.floating) or dtype in (np.int32, np.int64)):
        return f"data dtype {dtype}: MIL topk takes fp16, fp32, int32"
    if node.opset >= 10 and (reason := ctx.const_refusal(node.inputs[1], "K", "MIL topk takes a constant k")):
        return reason
    axis = node.attr("axis", -1)
    if not -len(shape) <= axis < len(shape):
        return f"axis {axis} is out of range for rank {len(shape)}"
    k, d = _k(node, ctx), shape[axis]
    if k < 1:
        return f"k={k} gives an empty result (CoreML has no zero-size tensors)"
    if isinstance(d, int) and k > d:
        return f"k={k} is larger than axis size {d}"
    return None
