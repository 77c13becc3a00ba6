"""ONNX BatchNormalization (inference, opsets 9-15) -> MIL ``batch_norm`` for rank 3-5 with constant
statistics; otherwise elementwise: ``x * a + b`` with ``a, b`` folded from constants, or
``(x - mean) * rsqrt(var + eps) * scale + bias`` when a statistic is computed in the graph.
"""
from __future__ import annotations

import numpy as np
from coremltools.converters.mil import Builder as mb
from coremltools.converters.mil.mil import types

from ..backend.convert.registry import op_builder
from ._common import Refuse, const_like, require_float_input
from ._normalization import operand_like, per_channel

@op_builder("BatchNormalization", min_opset=9)
def batch_norm(node, ctx):
    x = ctx.input(node, 0)
    out = node.outputs[0]
    if x.dtype == types.fp16 and any(ctx.dtype(node.inputs[i]) != np.float16 for i in range(1, 5)):
        # fp32 statistics (opset 15's T1/T2) on an fp16 input: normalize in fp32, round once.
        x = mb.cast(x=x, dtype="fp32", name=ctx.tmp("fp32_input"))
        y = _normalize(node, ctx, x, ctx.tmp("fp32"))
        ctx.set_output(node, mb.cast(x=y, dtype="fp16", name=ctx.mil_name(out)))
        return
    ctx.set_output(node, _normalize(node, ctx, x, ctx.mil_name(out)))


def _normalize(node, ctx, x, name: str):
    eps = float(node.attr("epsilon"))
    consts = [ctx.const(node.inputs[i]) for i in range(1, 5)]
    if all(c is not None for c in consts):
        scale, bias, mean, var = (c.astype(np.float64) for c in consts)
        if 3 <= x.rank <= 5:
            return mb.batch_norm(x=x, mean=const_like(mean, x), variance=const_like(var, x),
                                 gamma=const_like(scale, x), beta=const_like(bias, x),
                                 epsilon=const_like(eps, x), name=name)
        a = scale / np.sqrt(var + eps)
        y = mb.mul(x=x, y=per_channel(const_like(a, x), x.rank), name=ctx.tmp("scale"))
        return mb.add(x=y, y=per_channel(const_like(bias - mean * a, x), x.rank), name=name)
    scale, bias, mean, var = (operand_like(ctx, node, i, x) for i in range(1, 5))
    if not isinstance(var, np.ndarray):
        inv_std = mb.rsqrt(x=var, epsilon=const_like(eps, x), name=ctx.tmp("inv_std"))
    else:
        inv_std = const_like(1.0 / np.sqrt(var.astype(np.float64) + eps), x)
    y = mb.sub(x=x, y=mean, name=ctx.tmp("centered"))
    y = mb.mul(x=y, y=inv_std, name=ctx.tmp("normalized"))
    y = mb.mul(x=y, y=scale, name=ctx.tmp("scaled"))
    return mb.add(x=y, y=bias, name=name)


@batch_norm.check
def _(node, ctx):
    if node.attr("training_mode", 0):
        raise Refuse("training_mode=1 (batch statistics) is not supported; export the model in eval mode")
    if any(node.outputs[1:]):
        raise Refuse("the running/saved mean and variance outputs exist only in training")
    require_float_input(ctx, node.inputs[0], min_rank=2)
