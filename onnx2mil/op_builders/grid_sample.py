"""ONNX GridSample (opset 16+). 4-D linear/nearest -> MIL ``resample`` on normalized [-1, 1]
(x, y) coordinates. Padding: zeros -> constant 0, border -> border, reflection -> MIL reflection
(about the corner pixel centers) with align_corners, MIL symmetric (about the image edges)
without. Cubic (4-D) and 3-D volumes -> explicit taps: ONNX's border/reflection coordinate
fix-up, integer tap positions, Keys cubic (A = -0.75) / linear weights, batched ``gather``
(iOS16+), weighted sum."""
from __future__ import annotations

import itertools

import coremltools as ct
import numpy as np
from coremltools.converters.mil import Builder as mb

from ..backend.convert.registry import op_builder
from ._common import Refuse, const_like, is_static, require_float_input

_SAMPLING = {"linear": "bilinear", "bilinear": "bilinear", "nearest": "nearest"}


def padding_mode(node) -> str:
    mode = node.attr("padding_mode")
    if mode == "reflection":
        return "reflection" if node.attr("align_corners") else "symmetric"
    return {"zeros": "constant", "border": "border"}[mode]


_CUBIC_A = -0.75


def _tap_weights(ctx, frac, mode: str):
    """[(tap offset from floor, weight var)] along one axis, for the fractional position ``frac``."""
    if mode == "linear":
        return [(0, mb.sub(x=const_like(1.0, frac), y=frac, name=ctx.tmp("w0"))), (1, frac)]
    a = _CUBIC_A

    def near(s):  # |s| <= 1: ((A + 2) s - (A + 3)) s^2 + 1
        t = mb.sub(x=mb.mul(x=s, y=const_like(a + 2, frac), name=ctx.tmp("c")),
                   y=const_like(a + 3, frac), name=ctx.tmp("c"))
        return mb.add(x=mb.mul(x=t, y=mb.mul(x=s, y=s, name=ctx.tmp("c")), name=ctx.tmp("c")),
                      y=const_like(1.0, frac), name=ctx.tmp("c"))

    def far(s):  # 1 < |s| < 2: ((A s - 5A) s + 8A) s - 4A
        t = mb.add(x=mb.mul(x=s, y=const_like(a, frac), name=ctx.tmp("c")),
                   y=const_like(-5 * a, frac), name=ctx.tmp("c"))
        t = mb.add(x=mb.mul(x=t, y=s, name=ctx.tmp("c")), y=const_like(8 * a, frac),
                   name=ctx.tmp("c"))
        return mb.add(x=mb.mul(x=t, y=s, name=ctx.tmp("c")), y=const_like(-4 * a, frac),
                      name=ctx.tmp("c"))

    def shifted(k):
        return mb.add(x=frac, y=const_like(k, frac), name=ctx.tmp("s"))

    one_minus = mb.sub(x=const_like(1.0, frac), y=frac, name=ctx.tmp("s"))
    two_minus = mb.sub(x=const_like(2.0, frac), y=frac, name=ctx.tmp("s"))
    return [(-1, far(shifted(1.0))), (0, near(frac)), (1, near(one_minus)), (2, far(two_minus))]


def _reflect(ctx, v, low: float, high: float):
    """Mirror ``v`` into [low, high] at both ends (identity inside), as ONNX's reflection."""
    span = high - low
    q = mb.mod(x=mb.sub(x=v, y=const_like(low, v), name=ctx.tmp("from_low")),
               y=const_like(2 * span, v), name=ctx.tmp("period"))
    back = mb.sub(x=const_like(2 * span, v), y=q, name=ctx.tmp("back"))
    folded = mb.select(cond=mb.greater(x=q, y=const_like(span, v), name=ctx.tmp("far_half")),
                       a=back, b=q, name=ctx.tmp("folded"))
    return mb.add(x=folded, y=const_like(low, v), name=ctx.tmp("reflected"))


def _pad_coordinate(ctx, p, size: int, align: bool, padding: str, out: str):
    """ONNX's treatment of a pixel coordinate beyond the image's border range before sampling."""
    low, high = (0.0, size - 1.0) if align else (-0.5, size - 0.5)
    if padding == "reflection":
        return _reflect(ctx, p, low, high)
    if padding == "border":
        outside = mb.logical_or(x=mb.less(x=p, y=const_like(low, p), name=ctx.tmp("below")),
                                y=mb.greater(x=p, y=const_like(high, p), name=ctx.tmp("above")),
                                name=ctx.tmp("outside"))
        clamped = mb.clip(x=p, alpha=const_like(0.0, p), beta=const_like(size - 1.0, p), name=ctx.tmp("clamp"))
        return mb.select(cond=outside, a=clamped, b=p, name=ctx.tmp("bordered"))
    return p


def _gather_taps(node, ctx, x, grid, out: str):
    """Sampling by explicit taps over k = 2 or 3 spatial dims; out-of-image taps weigh 0 (zeros),
    clamp (border) or mirror (reflection)."""
    k = x.rank - 2
    sizes = list(x.shape[2:])
    batch, channels = x.shape[0], x.shape[1]
    out_sizes = list(grid.shape[1:-1])
    points = int(np.prod(out_sizes))
    mode = {"bilinear": "linear", "bicubic": "cubic"}.get(node.attr("mode"), node.attr("mode"))
    align = bool(node.attr("align_corners"))
    padding = node.attr("padding_mode")
    flat_x = mb.reshape(x=mb.transpose(x=x, perm=[0] + list(range(2, k + 2)) + [1], name=ctx.tmp("last_c")),
                        shape=np.array([batch, int(np.prod(sizes)), channels], np.int32), name=ctx.tmp("flat"))
    flat_grid = mb.reshape(x=grid, shape=np.array([batch, points, k], np.int32), name=ctx.tmp("grid"))
    axes = []  # per spatial axis (D/H/W order): [(tap index var, weight var)]
    for j, size in enumerate(sizes):
        c = mb.slice_by_index(x=flat_grid, begin=[0, 0, k - 1 - j], end=[batch, points, k - j],
                              squeeze_mask=[False, False, True], name=ctx.tmp(f"coord{j}"))
        # denormalize: align_corners (c + 1) / 2 * (size - 1), else ((c + 1) * size - 1) / 2
        if align:
            p = mb.mul(x=mb.add(x=c, y=const_like(1.0, c), name=ctx.tmp("p")),
                       y=const_like((size - 1) / 2, c), name=ctx.tmp(f"pixel{j}"))
        else:
            p = mb.sub(x=mb.mul(x=mb.add(x=c, y=const_like(1.0, c), name=ctx.tmp("p")),
                                y=const_like(size / 2, c), name=ctx.tmp("p")),
                       y=const_like(0.5, c), name=ctx.tmp(f"pixel{j}"))
        if mode == "nearest":  # round half to even, as ONNX (MIL round is half-to-even)
            p = mb.round(x=p, name=ctx.tmp(f"nearest{j}"))
        p = _pad_coordinate(ctx, p, size, align, padding, out)
        if mode == "nearest":
            axes.append([(p, None)])
            continue
        base = mb.floor(x=p, name=ctx.tmp(f"floor{j}"))
        frac = mb.sub(x=p, y=base, name=ctx.tmp(f"frac{j}"))
        axes.append([(mb.add(x=base, y=const_like(float(t), p), name=ctx.tmp(f"tap{j}")) if t else base, w)
                     for t, w in _tap_weights(ctx, frac, mode)])
    strides = [int(np.prod(sizes[j + 1:])) for j in range(k)]
    total = None
    for combo in itertools.product(*axes):
        flat_index, weight = None, None
        for j, (index, w) in enumerate(combo):
            if padding == "zeros":  # taps beyond the image weigh 0
                inside = mb.logical_and(
                    x=mb.greater_equal(x=index, y=const_like(0.0, index), name=ctx.tmp("lo")),
                    y=mb.less_equal(x=index, y=const_like(sizes[j] - 1, index), name=ctx.tmp("hi")),
                    name=ctx.tmp("inside"))
                mask = mb.cast(x=inside, dtype="fp32", name=ctx.tmp("mask"))
                w = mask if w is None else mb.mul(x=w, y=mask, name=ctx.tmp("wmask"))
            elif padding == "reflection":  # taps beyond the image read their mirror image
                low, high = (0.0, sizes[j] - 1.0) if align else (-0.5, sizes[j] - 0.5)
                index = _reflect(ctx, index, low, high)
            if w is not None:
                weight = w if weight is None else mb.mul(x=weight, y=w, name=ctx.tmp("weight"))
            clamped = mb.clip(x=index, alpha=const_like(0.0, index), beta=const_like(sizes[j] - 1, index),
                              name=ctx.tmp("clamped"))
            term = mb.mul(x=clamped, y=const_like(strides[j], index), name=ctx.tmp("offset"))
            flat_index = term if flat_index is None else mb.add(x=flat_index, y=term, name=ctx.tmp("index"))
        flat_index = mb.cast(x=flat_index, dtype="int32", name=ctx.tmp("index_i32"))
        values = mb.gather(x=flat_x, indices=flat_index, axis=1, batch_dims=1, name=ctx.tmp("values"))
        if weight is None:  # nearest sampling with border/reflection: one tap of weight 1
            term = values
        else:
            weight = mb.expand_dims(x=weight, axes=[-1], name=ctx.tmp("weight_c"))
            term = mb.mul(x=values, y=weight, name=ctx.tmp("term"))
        total = term if total is None else mb.add(x=total, y=term, name=ctx.tmp("sum"))
    total = mb.transpose(x=total, perm=[0, 2, 1], name=ctx.tmp("channels_first"))
    return mb.reshape(x=total, shape=np.array([batch, channels] + out_sizes, np.int32), name=ctx.mil_name(out))


def _needs_taps(node, rank: int) -> bool:
    return rank == 5 or node.attr("mode") in ("cubic", "bicubic")


@op_builder("GridSample", min_opset=16)
def grid_sample(node, ctx):
    x = ctx.input(node, 0)
    grid = ctx.input(node, 1)
    if _needs_taps(node, x.rank):
        ctx.set_output(node, _gather_taps(node, ctx, x, grid, node.outputs[0]))
        return
    y = mb.resample(x=x, coordinates=grid, sampling_mode=_SAMPLING[node.attr("mode")],
                    padding_mode=padding_mode(node), padding_value=const_like(0.0, x),
                    coordinates_mode="normalized_minus_one_to_one",
                    align_corners=bool(node.attr("align_corners")), name=ctx.mil_name(node.outputs[0]))
    ctx.set_output(node, y)


@grid_sample.check
def _(node, ctx):
    rank = len(require_float_input(ctx, node.inputs[0], what="resample takes"))
    if rank not in (4, 5):
        raise Refuse(f"rank-{rank} input (2-D images and 3-D volumes only)")
    if node.attr("padding_mode") not in ("zeros", "border", "reflection"):
        raise Refuse(f"padding_mode '{node.attr('padding_mode')}'")
    if _needs_taps(node, rank):
        shape = ctx.shape(node.inputs[0])
        if node.attr("padding_mode") == "reflection" and node.attr("align_corners") and 1 in shape[2:]:
            raise Refuse("reflection with align_corners on a size-1 spatial dim (an empty reflection range)")
        if node.attr("mode") in ("cubic", "bicubic") and node.attr("padding_mode") == "border":
            raise Refuse("cubic sampling with border padding: ONNX's reference clamps the coordinate, "
                    "onnxruntime (as PyTorch) clamps only the taps; the results differ")
        if ctx.target < ct.target.iOS16:
            raise Refuse("cubic or 3-D sampling gathers with batch_dims (minimum_deployment_target >= iOS16)")
        shapes = [ctx.shape(n) for n in node.inputs[:2]]
        if not all(is_static(s) for s in shapes):
            raise Refuse("cubic or 3-D sampling needs static input and grid shapes")
        if ctx.dtype(node.inputs[0]) != np.float32:
            raise Refuse("cubic or 3-D sampling on fp32 input only")
        return None
    if node.attr("mode") not in _SAMPLING:
        raise Refuse(f"mode '{node.attr('mode')}'")
    if ctx.dtype(node.inputs[1]) != ctx.dtype(node.inputs[0]):
        raise Refuse("grid dtype differs from the input dtype")
