"""ONNX Split -> MIL ``split``: ``split`` attribute (< 13) or input (>= 13), ``num_outputs``
(>= 18, uneven last chunk), or equal parts. Sizes must be constant."""
from __future__ import annotations

from typing import Optional

from coremltools.converters.mil import Builder as mb

from ..backend.convert.registry import op_builder
from .reshape import dtype_refusal


def split_sizes(node, ctx, dim) -> Optional[list[int]]:
    """Explicit chunk sizes, or None for an equal split into len(outputs) parts."""
    if node.opset < 13:
        sizes = node.attr("split")
        return None if sizes is None else [int(s) for s in sizes]
    if node.has_input(1):
        return [int(s) for s in ctx.const(node.inputs[1]).reshape(-1)]
    n = node.attr("num_outputs") if node.opset >= 18 else None
    if n is not None and isinstance(dim, int):
        chunk = -(-dim // n)
        return [chunk] * (dim // chunk) + ([dim % chunk] if dim % chunk else [])
    return None


@op_builder("Split", min_opset=2)
def split(node, ctx):
    x = ctx.input(node, 0)
    axis = node.attr("axis", 0)
    axis = axis + x.rank if axis < 0 else axis
    sizes = split_sizes(node, ctx, x.shape[axis])
    outs = [o for o in node.outputs]
    if len(outs) == 1:
        ctx.set_output(node, mb.identity(x=x, name=ctx.mil_name(outs[0])))
        return
    kwargs = dict(split_sizes=sizes) if sizes is not None else dict(num_splits=len(outs))
    parts = mb.split(x=x, axis=axis, name=ctx.scratch(f"{node.name}_split"), **kwargs)
    for part, o in zip(parts, outs):  # MIL names a multi-output op's vars "<op>_<k>"
        part.name = ctx.mil_name(o) if o else ctx.scratch(f"{node.name}_unused")
    ctx.set_output(node, *parts)


@split.check
def _(node, ctx):
    if reason := dtype_refusal(ctx, node.inputs[0]):
        return reason
    shape = ctx.shape(node.inputs[0])
    if shape is None:
        return "input rank is unknown"
    axis = node.attr("axis", 0)
    if not -len(shape) <= axis < len(shape):
        return f"axis {axis} is out of range for rank {len(shape)}"
    dim = shape[axis]
    n = len(node.outputs)
    if node.opset >= 13 and node.has_input(1):
        if reason := ctx.const_refusal(node.inputs[1], "split sizes", "MIL takes constant sizes"):
            return reason
        value = ctx.const(node.inputs[1])
        sizes = value.reshape(-1).tolist()
    elif node.opset < 13 and node.attr("split") is not None:
        sizes = list(node.attr("split"))
    else:
        sizes = None
    if sizes is not None:
        if len(sizes) != n:
            return f"{len(sizes)} split sizes for {n} outputs"
        if 0 in sizes:
            return "a split size of 0 makes a zero-size tensor (CoreML has none)"
        if isinstance(dim, int) and sum(sizes) != dim:
            return f"split sizes {sizes} do not add up to dim {dim}"
        return None
    if node.opset >= 18 and node.attr("num_outputs") is not None:
        if not isinstance(dim, int):
            return "num_outputs with a symbolic split dim: the (uneven) chunk sizes are unknown"
        if len(split_sizes(node, ctx, dim)) != n:
            return f"num_outputs={node.attr('num_outputs')} does not give {n} chunks of dim {dim}"
        return None
    if isinstance(dim, int) and dim % n:
        return f"dim {dim} does not split into {n} equal parts"
    return None
