"""ONNX RotaryEmbedding (opset 23) -> MIL gather (cos/sin rows by position_ids), slice_by_index
(rotated part; even/odd lanes when interleaved), ``x1*cos - x2*sin`` / ``x1*sin + x2*cos``, and
concat (stack + reshape to re-interleave). 3-D input is viewed as [B, S, heads, head_size]."""
from __future__ import annotations

import numpy as np
from coremltools.converters.mil import Builder as mb

from ..backend.convert.context import mil_dtype_of
from ..backend.convert.registry import op_builder
from ._common import Refuse, require_float_input, require_static


def _cache(ctx, node, i: int, positions, what: str):
    cache = ctx.const(node.inputs[i])
    cache = mil_dtype_of(cache) if cache is not None else ctx.var(node.inputs[i])
    if positions is None:
        return cache
    return mb.gather(x=cache, indices=positions, axis=0, name=ctx.tmp(f"{what}"))


def _lanes(ctx, x, begin: int, end: int, stride: int, what: str):
    rank = x.rank
    return mb.slice_by_index(x=x, begin=[0] * (rank - 1) + [begin], end=list(x.shape[:-1]) + [end],
                             stride=[1] * (rank - 1) + [stride], name=ctx.tmp(f"{what}"))


@op_builder("RotaryEmbedding", min_opset=23)
def rotary_embedding(node, ctx):
    x = ctx.input(node, 0)
    shape = list(x.shape)
    if x.rank == 3:
        heads = node.attr("num_heads")
        x = mb.reshape(x=x, shape=np.array(shape[:2] + [heads, shape[2] // heads], np.int32),
                       name=ctx.tmp("heads"))
    head_size = x.shape[-1]
    rot = node.attr("rotary_embedding_dim") or head_size
    half = rot // 2
    positions = None
    if node.has_input(3):
        positions = ctx.const(node.inputs[3])
        positions = mil_dtype_of(positions) if positions is not None else ctx.input(node, 3)
    cos = _cache(ctx, node, 1, positions, "cos")   # [B, S, half]
    sin = _cache(ctx, node, 2, positions, "sin")
    seq_axis_of_heads = 1 if len(shape) == 4 else 2  # where the heads axis goes to broadcast [B, S, half]
    cos = mb.expand_dims(x=cos, axes=[seq_axis_of_heads], name=ctx.tmp("cos_heads"))
    sin = mb.expand_dims(x=sin, axes=[seq_axis_of_heads], name=ctx.tmp("sin_heads"))
    if node.attr("interleaved"):
        x1 = _lanes(ctx, x, 0, rot, 2, "even")
        x2 = _lanes(ctx, x, 1, rot, 2, "odd")
    else:
        x1 = _lanes(ctx, x, 0, half, 1, "first_half")
        x2 = _lanes(ctx, x, half, rot, 1, "second_half")
    real = mb.sub(x=mb.mul(x=x1, y=cos, name=ctx.tmp("x1cos")),
                  y=mb.mul(x=x2, y=sin, name=ctx.tmp("x2sin")), name=ctx.tmp("real"))
    imag = mb.add(x=mb.mul(x=x1, y=sin, name=ctx.tmp("x1sin")),
                  y=mb.mul(x=x2, y=cos, name=ctx.tmp("x2cos")), name=ctx.tmp("imag"))
    if node.attr("interleaved"):
        pairs = mb.stack(values=[real, imag], axis=-1, name=ctx.tmp("pairs"))
        rotated = mb.reshape(x=pairs, shape=np.array(list(x.shape[:-1]) + [rot], np.int32),
                             name=ctx.tmp("rotated"))
    else:
        rotated = mb.concat(values=[real, imag], axis=-1, name=ctx.tmp("rotated"))
    parts = [rotated] + ([_lanes(ctx, x, rot, head_size, 1, "pass_through")] if rot < head_size else [])
    y = mb.concat(values=parts, axis=-1, name=ctx.tmp("joined"))
    if len(shape) == 3:
        y = mb.reshape(x=y, shape=np.array(shape, np.int32), name=ctx.tmp("merged_heads"))
    ctx.set_output(node, y)


@rotary_embedding.check
def _(node, ctx):
    shape = require_float_input(ctx, node.inputs[0], what="rotary embedding takes")
    if len(shape) not in (3, 4):
        raise Refuse(f"rank-{len(shape)} input (3-D [B, S, hidden] or 4-D [B, heads, S, head_size])")
    require_static(shape, "input shape must be static")
    if len(shape) == 3 and not node.attr("num_heads"):
        raise Refuse("3-D input needs the num_heads attribute")
    head_size = shape[-1] if len(shape) == 4 else shape[-1] // node.attr("num_heads")
    rot = node.attr("rotary_embedding_dim") or head_size
    if rot % 2 or rot > head_size:
        raise Refuse(f"rotary_embedding_dim {rot} must be even and <= head size {head_size}")
    cache = ctx.shape(node.inputs[1])
    if cache is None or not isinstance(cache[-1], int) or cache[-1] != rot // 2:
        raise Refuse(f"cos/sin cache last dim {cache and cache[-1]} must equal rotary_embedding_dim / 2 = {rot // 2}")
