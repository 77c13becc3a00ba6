"""ONNX Trilu (``upper``, constant k) -> MIL ``band_part`` when one band expresses it, else a
``select`` with a constant triangle mask (static last two dims)."""
from __future__ import annotations

from typing import Optional

import numpy as np
from coremltools.converters.mil import Builder as mb
from coremltools.converters.mil.mil import types

from ..backend.convert.registry import op_builder
from ._common import Refuse, is_static, require_const

_ZERO = {types.fp32: np.float32(0), types.fp16: np.float16(0), types.int32: np.int32(0), types.bool: False}


def _k(node, ctx) -> int:
    return int(ctx.const(node.inputs[1]).reshape(-1)[0]) if node.has_input(1) else 0


def band(upper: bool, k: int) -> Optional[tuple[int, int]]:
    """(lower, upper) of band_part keeping j - i >= k (upper) or j - i <= k (lower), if one band does."""
    if upper and k <= 0:
        return -k, -1
    if not upper and k >= 0:
        return -1, k
    return None


@op_builder("Trilu", min_opset=14)
def trilu(node, ctx):
    x = ctx.input(node, 0)
    upper, k = bool(node.attr("upper", 1)), _k(node, ctx)
    name = ctx.mil_name(node.outputs[0])
    bounds = band(upper, k)
    if bounds is not None:
        ctx.set_output(node, mb.band_part(x=x, lower=bounds[0], upper=bounds[1], name=name))
        return
    rows, cols = x.shape[-2:]
    offset = np.arange(cols)[None, :] - np.arange(rows)[:, None]
    keep = offset >= k if upper else offset <= k
    ctx.set_output(node, mb.select(cond=keep, a=x, b=_ZERO[x.dtype], name=name))


@trilu.check
def _(node, ctx):
    shape = ctx.shape(node.inputs[0])
    if shape is None or len(shape) < 2:
        raise Refuse("input must be at least 2-D")
    if node.has_input(1):

        require_const(ctx, node.inputs[1], "k")
    if band(bool(node.attr("upper", 1)), _k(node, ctx)) is None and not is_static(shape[-2:]):
        raise Refuse("this k needs a triangle mask, which needs static last two dims")
