"""ONNX Split -> MIL ``split``: ``split`` attribute (< 13) or input (>= 13), ``num_outputs``
(>= 18, uneven last chunk), or equal parts. Sizes must be constant."""
from __future__ import annotations

from typing import Optional

from coremltools.converters.mil import Builder as mb

from ..backend.convert.registry import op_builder
from ._common import Refuse, require_axis, require_const, require_layout_dtype, require_shape


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
    parts = mb.split(x=x, axis=axis, name=ctx.tmp("split"), **kwargs)
    for part, o in zip(parts, outs):  # MIL names a multi-output op's vars "<op>_<k>"
        part.name = ctx.mil_name(o) if o else ctx.tmp("unused")
    ctx.set_output(node, *parts)


@split.check
def _(node, ctx):
    require_layout_dtype(ctx, node.inputs[0])
    shape = require_shape(ctx, node.inputs[0])
    axis = node.attr("axis", 0)
    require_axis(axis, len(shape))
    dim = shape[axis]
    n = len(node.outputs)
    if node.opset >= 13 and node.has_input(1):
        require_const(ctx, node.inputs[1], "split sizes", "MIL takes constant sizes")
        value = ctx.const(node.inputs[1])
        sizes = value.reshape(-1).tolist()
    elif node.opset < 13 and node.attr("split") is not None:
        sizes = list(node.attr("split"))
    else:
        sizes = None
    if sizes is not None:
        if len(sizes) != n:
            raise Refuse(f"{len(sizes)} split sizes for {n} outputs")
        if 0 in sizes:
            raise Refuse("a split size of 0 makes a zero-size tensor (CoreML has none)")
        if isinstance(dim, int) and sum(sizes) != dim:
            raise Refuse(f"split sizes {sizes} do not add up to dim {dim}")
        return None
    if node.opset >= 18 and node.attr("num_outputs") is not None:
        if not isinstance(dim, int):
            raise Refuse("num_outputs with a symbolic split dim: the (uneven) chunk sizes are unknown")
        if len(split_sizes(node, ctx, dim)) != n:
            raise Refuse(f"num_outputs={node.attr('num_outputs')} does not give {n} chunks of dim {dim}")
        return None
    if isinstance(dim, int) and dim % n:
        raise Refuse(f"dim {dim} does not split into {n} equal parts")
