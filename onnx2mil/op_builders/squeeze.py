"""ONNX Squeeze / Unsqueeze (``axes`` attribute before opset 13, constant input from 13)
-> MIL ``squeeze`` / ``expand_dims``. Squeeze without axes on symbolic dims decides each one from
its bounds (over the inputs' RangeDims): always 1 -> squeezed, never 1 -> kept."""
from __future__ import annotations

from typing import Optional, Union

import numpy as np
from coremltools.converters.mil import Builder as mb

from ..backend.convert.registry import op_builder
from ._common import Refuse, require_axis, require_const, require_layout_dtype, require_rank, require_shape


def axes_of(node, ctx) -> Optional[list[int]]:
    """The ``axes`` attribute (opset < 13) or constant input 1 (opset >= 13); None if absent."""
    if node.opset < 13:
        axes = node.attr("axes")
        return None if axes is None else [int(a) for a in axes]
    if not node.has_input(1):
        return None
    value = ctx.const(node.inputs[1])
    return None if value is None else [int(a) for a in value.reshape(-1)]


def _require_const_axes(node, ctx) -> None:
    if node.opset >= 13 and node.has_input(1):
        require_const(ctx, node.inputs[1], "axes", "MIL takes constant axes")


def implicit_axes(node, ctx) -> Union[list[int], str]:
    """The dims Squeeze without axes removes: those of size 1, or a reason if a dim may or may not be 1."""
    shape = ctx.shape(node.inputs[0])
    axes = []
    for a, d in enumerate(shape):
        bounds = (d, d) if isinstance(d, int) else ctx.dim_range(node.inputs[0], a)
        if bounds is None:
            return f"no axes given and dim {a} ({d}) is symbolic with no known bounds: whether it is 1 is unknown"
        if bounds == (1, 1):
            axes.append(a)
        elif bounds[0] <= 1:
            return (f"no axes given and dim {a} ({d}) runs {bounds[0]}..{bounds[1]} over the inputs' bounds: "
                    "whether it is squeezed depends on the runtime size")
    return axes


@op_builder("Squeeze")
def squeeze(node, ctx):
    x = ctx.input(node, 0)
    axes = axes_of(node, ctx)
    if axes is None:
        axes = implicit_axes(node, ctx)
    axes = sorted(a + x.rank if a < 0 else a for a in axes)
    out = ctx.mil_name(node.outputs[0])
    if not axes:
        y = mb.identity(x=x, name=out)
    elif any(not isinstance(x.shape[a], (int, np.integer)) for a in axes):
        # MIL squeeze keeps a symbolic dim (its type inference removes only dims known to be 1)
        kept = [a for a in range(x.rank) if a not in axes]
        shape = mb.gather(x=mb.shape(x=x, name=ctx.tmp("in_shape")), indices=np.array(kept, np.int32),
                          axis=0, name=ctx.tmp("kept_dims"))
        y = mb.reshape(x=x, shape=shape, name=out)
    else:
        y = mb.squeeze(x=x, axes=axes, name=out)
    ctx.set_output(node, y)


@squeeze.check
def _(node, ctx):
    require_layout_dtype(ctx, node.inputs[0])
    _require_const_axes(node, ctx)
    shape = require_shape(ctx, node.inputs[0])
    axes = axes_of(node, ctx)
    if axes is None:
        axes = implicit_axes(node, ctx)
        return axes if isinstance(axes, str) else None
    for a in axes:
        require_axis(a, len(shape))
        d = shape[a]
        if isinstance(d, int) and d != 1:
            raise Refuse(f"axis {a} has size {d}, not 1")
        bounds = None if isinstance(d, int) else ctx.dim_range(node.inputs[0], a)
        if bounds is not None and bounds != (1, 1):
            raise Refuse(f"axis {a} ({d}) runs {bounds[0]}..{bounds[1]} over the inputs' bounds; Squeeze needs it to be 1")


@op_builder("Unsqueeze")
def unsqueeze(node, ctx):
    x = ctx.input(node, 0)
    axes = axes_of(node, ctx)
    out_rank = x.rank + len(axes)
    axes = sorted(a + out_rank if a < 0 else a for a in axes)
    ctx.set_output(node, mb.expand_dims(x=x, axes=axes, name=ctx.mil_name(node.outputs[0])))


@unsqueeze.check
def _(node, ctx):
    require_layout_dtype(ctx, node.inputs[0])
    _require_const_axes(node, ctx)
    axes = axes_of(node, ctx)
    if axes is None:
        raise Refuse("axes are required")
    rank = require_rank(ctx, node.inputs[0])
    out_rank = rank + len(axes)
    norm = [a + out_rank if a < 0 else a for a in axes]
    if any(not 0 <= a < out_rank for a in norm) or len(set(norm)) != len(norm):
        raise Refuse(f"axes {axes} are out of range or repeated for output rank {out_rank}")
