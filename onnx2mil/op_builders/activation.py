"""ONNX activations (LeakyRelu Elu Selu Celu ThresholdedRelu HardSigmoid HardSwish Gelu Mish PRelu
Clip Shrink) -> the MIL activation of the same formula, or a short expansion. MIL
``thresholded_relu`` keeps x == alpha where ONNX zeroes it, so ThresholdedRelu is a select.
"""
from __future__ import annotations

import numpy as np
from coremltools.converters.mil import Builder as mb
from coremltools.converters.mil.mil import types

from ..backend.convert.registry import op_builder
from ._common import Refuse, const_like, require_kinds, widen


def _leaky_relu(node, ctx, x, name, tmp):
    return mb.leaky_relu(x=x, alpha=const_like(node.attr("alpha"), x), name=name)


def _elu(node, ctx, x, name, tmp):
    return mb.elu(x=x, alpha=const_like(node.attr("alpha"), x), name=name)


def _selu(node, ctx, x, name, tmp):
    e = mb.elu(x=x, alpha=const_like(node.attr("alpha"), x), name=tmp("elu"))
    return mb.mul(x=e, y=const_like(node.attr("gamma"), x), name=name)


def _celu(node, ctx, x, name, tmp):
    """alpha * elu(x / alpha, 1)."""
    alpha = node.attr("alpha")
    if alpha == 1.0:
        return mb.elu(x=x, alpha=const_like(1.0, x), name=name)
    e = mb.elu(x=mb.real_div(x=x, y=const_like(alpha, x), name=tmp("scaled")), alpha=const_like(1.0, x),
               name=tmp("elu"))
    return mb.mul(x=e, y=const_like(alpha, x), name=name)


def _thresholded_relu(node, ctx, x, name, tmp):
    keep = mb.greater(x=x, y=const_like(node.attr("alpha"), x), name=tmp("keep"))
    return mb.select(cond=keep, a=x, b=const_like(0.0, x), name=name)


def _hard_sigmoid(node, ctx, x, name, tmp):
    return mb.sigmoid_hard(x=x, alpha=const_like(node.attr("alpha"), x), beta=const_like(node.attr("beta"), x), name=name)


def _hard_swish(node, ctx, x, name, tmp):
    h = mb.sigmoid_hard(x=x, alpha=const_like(1.0 / 6.0, x), beta=const_like(0.5, x), name=tmp("hard_sigmoid"))
    return mb.mul(x=x, y=h, name=name)


def _gelu(node, ctx, x, name, tmp):
    mode = "TANH_APPROXIMATION" if node.attr("approximate") == "tanh" else "EXACT"
    return mb.gelu(x=x, mode=mode, name=name)


def _mish(node, ctx, x, name, tmp):
    t = mb.tanh(x=mb.softplus(x=x, name=tmp("softplus")), name=tmp("tanh"))
    return mb.mul(x=x, y=t, name=name)


def _prelu(node, ctx, x, name, tmp):
    slope = ctx.const(node.inputs[1])
    if slope is not None and node.opset < 7 and slope.ndim == 1 and slope.size > 1 and x.rank >= 2:
        # PRelu-1/6 predate broadcasting: a (C,) slope is one value per channel (axis 1), as in
        # PyTorch's exports (onnx's pytorch-converted test_PReLU_*_multiparam).
        slope = slope.reshape((-1,) + (1,) * (x.rank - 2))
    if slope is not None and types.is_float(x.dtype):
        if slope.size == 1:
            return mb.leaky_relu(x=x, alpha=const_like(slope.item(), x), name=name)
        channels = _per_channel(slope, x)
        if channels is not None:
            return mb.prelu(x=x, alpha=const_like(channels, x), name=name)
    s = ctx.input(node, 1) if slope is None else const_like(slope, x)
    negative = mb.mul(x=x, y=s, name=tmp("negative"))
    keep = mb.greater_equal(x=x, y=const_like(0, x), name=tmp("keep"))
    return mb.select(cond=keep, a=x, b=negative, name=name)


def _per_channel(slope: np.ndarray, x):
    """The (C,) alpha of MIL prelu if ``slope`` broadcasts as one value per channel of a 4-D x
    (MIL prelu takes rank 4; rank 3/5 only with equal alphas)."""
    if x.rank != 4 or slope.ndim > 4 or not isinstance(x.shape[1], int):
        return None
    shape = (1,) * (4 - slope.ndim) + slope.shape
    if shape[0] != 1 or shape[2:] != (1, 1) or shape[1] != x.shape[1]:
        return None
    return slope.reshape(-1)


def _clip(node, ctx, x, name, tmp):
    """int8/uint8/int16/uint16 (iOS17+) are clipped in int32 between casts."""
    (x,), back = widen([x], tmp)
    y = _clip_wide(node, ctx, x, tmp("int32_result") if back else name, tmp)
    return mb.cast(x=y, dtype=back, name=name) if back else y


def _clip_wide(node, ctx, x, name, tmp):
    if node.opset < 11:
        lo, hi = node.attr("min"), node.attr("max")  # schema defaults: -/+FLT_MAX
        lo_var, hi_var = const_like(lo, x), const_like(hi, x)
    else:
        lo = ctx.const(node.inputs[1]) if node.has_input(1) else None
        hi = ctx.const(node.inputs[2]) if node.has_input(2) else None
        (lo_var, hi_var), _ = widen([const_like(lo, x) if lo is not None else ctx.input(node, 1),
                                     const_like(hi, x) if hi is not None else ctx.input(node, 2)], tmp)
    if types.is_float(x.dtype) and lo is not None and hi is not None and float(lo) <= float(hi):
        return mb.clip(x=x, alpha=lo_var, beta=hi_var, name=name)
    # ONNX: min > max gives max everywhere, which max-then-min reproduces.
    if lo_var is None and hi_var is None:
        return mb.identity(x=x, name=name)
    if lo_var is not None:
        x = mb.maximum(x=x, y=lo_var, name=name if hi_var is None else tmp("min"))
    if hi_var is not None:
        x = mb.minimum(x=x, y=hi_var, name=name)
    return x


def _shrink(node, ctx, x, name, tmp):
    lambd, bias = node.attr("lambd"), node.attr("bias")
    below = mb.less(x=x, y=const_like(-lambd, x), name=tmp("below"))
    above = mb.greater(x=x, y=const_like(lambd, x), name=tmp("above"))
    up = mb.select(cond=above, a=mb.sub(x=x, y=const_like(bias, x), name=tmp("minus_bias")), b=const_like(0.0, x),
                   name=tmp("upper"))
    return mb.select(cond=below, a=mb.add(x=x, y=const_like(bias, x), name=tmp("plus_bias")), b=up, name=name)


_LOWERINGS = {
    "LeakyRelu": _leaky_relu, "Elu": _elu, "Selu": _selu, "Celu": _celu, "ThresholdedRelu": _thresholded_relu,
    "HardSigmoid": _hard_sigmoid, "HardSwish": _hard_swish, "Gelu": _gelu, "Mish": _mish, "PRelu": _prelu,
    "Clip": _clip, "Shrink": _shrink,
}


@op_builder(*_LOWERINGS, min_opset=6)
def activation(node, ctx):
    out = node.outputs[0]

    y = _LOWERINGS[node.op_type](node, ctx, ctx.input(node, 0), ctx.mil_name(out), ctx.tmp)
    ctx.set_output(node, y)


@activation.check
def _(node, ctx):
    allowed = ("float", "int") if node.op_type in ("PRelu", "Clip") else ("float",)
    if node.op_type == "Gelu" and node.attr("approximate") not in ("none", "tanh"):
        raise Refuse(f"Gelu approximate='{node.attr('approximate')}' (ONNX defines none and tanh)")
    require_kinds(ctx, [i for i in node.inputs if i], allowed, widens_small_ints=node.op_type == "Clip")
