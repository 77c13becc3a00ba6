"""ONNX LpNormalization -> ``x / reduce_l{1,2}_norm`` (an all-zero slice stays 0, as in onnxruntime);
ONNX LRN -> MIL ``local_response_norm`` for odd sizes; even sizes (whose window ONNX centres
asymmetrically) sum x^2 over channels with an avg_pool on an added unit axis.
"""
from __future__ import annotations

import numpy as np
from coremltools.converters.mil import Builder as mb

from ..backend.convert.registry import op_builder
from ._common import Refuse, const_like, is_static, require_axis, require_float_input


@op_builder("LpNormalization")
def lp_normalization(node, ctx):
    x = ctx.input(node, 0)
    out = node.outputs[0]
    reduce = mb.reduce_l2_norm if node.attr("p") == 2 else mb.reduce_l1_norm
    norm = reduce(x=x, axes=[node.attr("axis")], keep_dims=True, name=ctx.tmp("norm"))
    is_zero = mb.equal(x=norm, y=const_like(0, x), name=ctx.tmp("norm_is_zero"))
    safe = mb.select(cond=is_zero, a=const_like(1, x), b=norm, name=ctx.tmp("safe_norm"))
    ctx.set_output(node, mb.real_div(x=x, y=safe, name=ctx.mil_name(out)))


@lp_normalization.check
def _(node, ctx):
    require_axis(node.attr("axis"), len(require_float_input(ctx, node.inputs[0], what="reduces")))
    if node.attr("p") not in (1, 2):
        raise Refuse(f"p={node.attr('p')} (ONNX defines p=1 and p=2 only)")


def _channel_window_sum(ctx, squared, size: int):
    """sum over channels [c - (size-1)//2, c + size//2] of ``squared`` (N, C, *D), divided by size."""
    lifted = mb.expand_dims(x=squared, axes=[1], name=ctx.tmp("lifted"))
    spatial = squared.rank - 2
    pad = [(size - 1) // 2, size // 2] + [0, 0] * spatial
    pooled = mb.avg_pool(x=lifted, kernel_sizes=[size] + [1] * spatial, strides=[1] * (spatial + 1),
                         pad_type="custom", pad=pad, exclude_padding_from_average=False,
                         name=ctx.tmp("window_mean"))
    return mb.squeeze(x=pooled, axes=[1], name=ctx.tmp("window_mean_squeezed"))


@op_builder("LRN")
def lrn(node, ctx):
    x = ctx.input(node, 0)
    out = node.outputs[0]
    size = int(node.attr("size"))
    alpha, beta, bias = (float(node.attr(a)) for a in ("alpha", "beta", "bias"))
    restore = None
    if x.rank > 4:  # MIL takes rank 3-4: merge the (static) spatial dims
        restore = np.array(x.shape, dtype=np.int32)
        flat = [-1, x.shape[1], int(np.prod(x.shape[2:]))]
        x = mb.reshape(x=x, shape=np.array(flat, dtype=np.int32), name=ctx.tmp("flat"))
    if size % 2:
        y = mb.local_response_norm(x=x, size=size, alpha=const_like(alpha, x), beta=const_like(beta, x),
                                   k=const_like(bias, x), name=ctx.tmp("lrn"))
    else:
        squared = mb.mul(x=x, y=x, name=ctx.tmp("squared"))
        mean = _channel_window_sum(ctx, squared, size)
        base = mb.add(x=mb.mul(x=mean, y=const_like(alpha, x), name=ctx.tmp("alpha")),
                      y=const_like(bias, x), name=ctx.tmp("base"))
        denom = mb.pow(x=base, y=const_like(-beta, x), name=ctx.tmp("inv_denominator"))
        y = mb.mul(x=x, y=denom, name=ctx.tmp("lrn"))
    if restore is not None:
        y = mb.reshape(x=y, shape=restore, name=ctx.mil_name(out))
    ctx.set_output(node, y)


@lrn.check
def _(node, ctx):
    shape = require_float_input(ctx, node.inputs[0], min_rank=3)
    if len(shape) > 4 and not is_static(shape[1:]):
        raise Refuse("rank 5 needs static channel and spatial dims (they are merged to fit MIL's rank 3-4)")
    if not node.attr("size") or node.attr("size") < 1:
        raise Refuse("size must be a positive integer")
