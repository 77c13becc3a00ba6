"""ONNX CumProd (opset 26; ``exclusive``, ``reverse``) -> a running MIL ``mul`` over the slices of a
static axis, concatenated. Exact for zeros and negatives (no log/exp); axis length is capped."""
from __future__ import annotations

import coremltools as ct
import numpy as np
from coremltools.converters.mil import Builder as mb

from ..backend.convert.registry import op_builder
from ._common import Refuse, const_like, is_static, require_axis, require_const, require_float_or_int, require_shape

MAX_AXIS_LENGTH = 256  # one mul per step: longer axes would unroll into too many ops


def _ones_like(ctx, ref):
    """Ones shaped like ``ref``: a constant when its shape is static, else iOS16's fill_like."""
    if is_static(ref.shape):
        return const_like(np.ones(ref.shape), ref)
    return mb.fill_like(ref_tensor=ref, value=const_like(1, ref), name=ctx.tmp("ones"))


@op_builder("CumProd", min_opset=26)
def cumprod(node, ctx):
    x = ctx.input(node, 0)
    out = node.outputs[0]
    axis = int(ctx.const(node.inputs[1]).reshape(-1)[0]) % x.rank
    n = x.shape[axis]
    exclusive = bool(node.attr("exclusive"))
    slices = list(mb.split(x=x, num_splits=n, axis=axis, name=ctx.tmp("steps"))) if n > 1 else [x]
    order = list(range(n - 1, -1, -1) if node.attr("reverse") else range(n))
    if exclusive:  # step i takes the product of the steps before it; the first takes ones
        factors = [_ones_like(ctx, slices[order[0]])] + [slices[i] for i in order[:-1]]
    else:
        factors = [slices[i] for i in order]
    results = {}
    running = factors[0]
    for k, i in enumerate(order):
        if k:
            running = mb.mul(x=running, y=factors[k], name=ctx.tmp("step"))
        results[i] = running
    if n == 1:
        y = mb.identity(x=results[0], name=ctx.mil_name(out)) if not exclusive else mb.mul(
            x=results[0], y=const_like(1, x), name=ctx.mil_name(out))
    else:
        y = mb.concat(values=[results[i] for i in range(n)], axis=axis, name=ctx.mil_name(out))
    ctx.set_output(node, y)


@cumprod.check
def _(node, ctx):
    shape = require_shape(ctx, node.inputs[0])
    require_float_or_int(ctx, node.inputs[0], "MIL mul takes fp16, fp32, int32")
    axis = require_const(ctx, node.inputs[1], "axis")
    axis = int(axis.reshape(-1)[0])
    require_axis(axis, len(shape))
    n = shape[axis]
    if not isinstance(n, int):
        raise Refuse("the cumulated axis must have a static length (the product unrolls over it)")
    if n > MAX_AXIS_LENGTH:
        raise Refuse(f"axis length {n} exceeds {MAX_AXIS_LENGTH} unrolled steps")
    if n == 0:
        raise Refuse("empty cumulated axis")
    static = is_static(shape)
    if node.attr("exclusive") and not static and ctx.target < ct.target.iOS16:
        raise Refuse("exclusive on symbolic dims needs fill_like (minimum_deployment_target >= iOS16)")
