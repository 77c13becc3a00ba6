"""ONNX RoiAlign (fixed sampling_ratio; avg or max; half_pixel or output_half_pixel) -> per ROI,
one-hot row and column interpolation matrices of the sr x sr sample points of every bin (ONNX's
boundary rules: points beyond [-1, size] weigh 0, clamped at the last pixel), two ``matmul``s
around the gathered feature map, then an sr x sr ``avg_pool`` (or, for max mode, the max of the
four corner products and ``max_pool``)."""
from __future__ import annotations

import numpy as np
from coremltools.converters.mil import Builder as mb

from ..backend.convert.context import mil_dtype_of
from ..backend.convert.registry import op_builder
from ._common import Refuse, is_static, require_float_input


def _axis_matrices(ctx, start, bin_size, out_size: int, sr: int, size: int, what: str):
    """[R, out*sr, size] interpolation weights of the low and the high neighbour of each sample."""
    offsets = np.array([p + (i + 0.5) / sr for p in range(out_size) for i in range(sr)], np.float32)
    pos = mb.add(x=mb.expand_dims(x=start, axes=[1], name=ctx.tmp(f"{what}_start")),
                 y=mb.mul(x=mb.expand_dims(x=bin_size, axes=[1], name=ctx.tmp(f"{what}_bin")), y=offsets,
                          name=ctx.tmp(f"{what}_steps")), name=ctx.tmp(f"{what}_pos"))
    valid = mb.cast(x=mb.logical_and(
        x=mb.greater_equal(x=pos, y=np.float32(-1.0), name=ctx.tmp(f"{what}_ge")),
        y=mb.less_equal(x=pos, y=np.float32(size), name=ctx.tmp(f"{what}_le")),
        name=ctx.tmp(f"{what}_in")), dtype="fp32", name=ctx.tmp(f"{what}_valid"))
    pos = mb.clip(x=pos, alpha=np.float32(0.0), beta=np.float32(size - 1), name=ctx.tmp(f"{what}_clamped"))
    low = mb.floor(x=pos, name=ctx.tmp(f"{what}_low"))
    high = mb.minimum(x=mb.add(x=low, y=np.float32(1.0), name=ctx.tmp(f"{what}_next")),
                      y=np.float32(size - 1), name=ctx.tmp(f"{what}_high"))
    frac = mb.sub(x=pos, y=low, name=ctx.tmp(f"{what}_frac"))
    w_high = mb.mul(x=frac, y=valid, name=ctx.tmp(f"{what}_w_high"))
    w_low = mb.mul(x=mb.sub(x=np.float32(1.0), y=frac, name=ctx.tmp(f"{what}_1mfrac")), y=valid,
                   name=ctx.tmp(f"{what}_w_low"))
    mats = []
    for index, weight, corner in ((low, w_low, "low"), (high, w_high, "high")):
        hot = mb.one_hot(indices=mb.cast(x=index, dtype="int32", name=ctx.tmp(f"{what}_{corner}_i")),
                         one_hot_vector_size=size, on_value=1.0, off_value=0.0,
                         name=ctx.tmp(f"{what}_{corner}_hot"))
        mats.append(mb.mul(x=hot, y=mb.expand_dims(x=weight, axes=[2], name=ctx.tmp(f"{what}_{corner}_w")),
                           name=ctx.tmp(f"{what}_{corner}")))
    return mats


def _column(ctx, rois, i: int):
    return mb.slice_by_index(x=rois, begin=[0, i], end=[rois.shape[0], i + 1], squeeze_mask=[False, True],
                             name=ctx.tmp(f"roi{i}"))


@op_builder("RoiAlign", min_opset=10)
def roi_align(node, ctx):
    x, rois = ctx.input(node, 0), ctx.input(node, 1)
    out = node.outputs[0]
    batch_idx = ctx.const(node.inputs[2])
    batch_idx = mil_dtype_of(batch_idx) if batch_idx is not None else ctx.input(node, 2)
    height, width = x.shape[2], x.shape[3]
    out_h, out_w = node.attr("output_height"), node.attr("output_width")
    sr = node.attr("sampling_ratio")
    scale = np.float32(node.attr("spatial_scale"))
    half_pixel = node.attr("coordinate_transformation_mode", "output_half_pixel") == "half_pixel"
    offset = np.float32(0.5 if half_pixel else 0.0)
    x1, y1, x2, y2 = (mb.sub(x=mb.mul(x=_column(ctx, rois, i), y=scale, name=ctx.tmp(f"scaled{i}")),
                             y=offset, name=ctx.tmp(f"c{i}")) for i in range(4))
    roi_w = mb.sub(x=x2, y=x1, name=ctx.tmp("roi_w"))
    roi_h = mb.sub(x=y2, y=y1, name=ctx.tmp("roi_h"))
    if not half_pixel:  # malformed ROIs become 1 x 1
        roi_w = mb.maximum(x=roi_w, y=np.float32(1.0), name=ctx.tmp("roi_w1"))
        roi_h = mb.maximum(x=roi_h, y=np.float32(1.0), name=ctx.tmp("roi_h1"))
    bin_h = mb.real_div(x=roi_h, y=np.float32(out_h), name=ctx.tmp("bin_h"))
    bin_w = mb.real_div(x=roi_w, y=np.float32(out_w), name=ctx.tmp("bin_w"))
    rows = _axis_matrices(ctx, y1, bin_h, out_h, sr, height, "rows")   # [R, out_h*sr, H] x2
    cols = _axis_matrices(ctx, x1, bin_w, out_w, sr, width, "cols")    # [R, out_w*sr, W] x2
    features = mb.gather(x=x, indices=batch_idx, axis=0, name=ctx.tmp("features"))  # [R, C, H, W]

    def sample(row, col, what):
        row = mb.expand_dims(x=row, axes=[1], name=ctx.tmp(f"{what}_rows4"))
        col = mb.expand_dims(x=col, axes=[1], name=ctx.tmp(f"{what}_cols4"))
        t = mb.matmul(x=row, y=features, name=ctx.tmp(f"{what}_rows_applied"))
        return mb.matmul(x=t, y=col, transpose_y=True, name=ctx.tmp(f"{what}_samples"))

    pool = dict(kernel_sizes=[sr, sr], strides=[sr, sr], pad_type="valid", name=ctx.mil_name(out))
    if node.attr("mode") == "max":
        corners = [sample(r, c, f"corner{i}{j}") for i, r in enumerate(rows) for j, c in enumerate(cols)]
        best = corners[0]
        for k, corner in enumerate(corners[1:]):
            best = mb.maximum(x=best, y=corner, name=ctx.tmp(f"max{k}"))
        ctx.set_output(node, mb.max_pool(x=best, **pool))
        return
    row = mb.add(x=rows[0], y=rows[1], name=ctx.tmp("rows"))
    col = mb.add(x=cols[0], y=cols[1], name=ctx.tmp("cols"))
    ctx.set_output(node, mb.avg_pool(x=sample(row, col, "bilinear"), exclude_padding_from_average=False, **pool))


@roi_align.check
def _(node, ctx):
    shape = require_float_input(ctx, node.inputs[0], what="RoiAlign takes")
    if len(shape) != 4 or not is_static(shape):
        raise Refuse("input must be a static [N, C, H, W] tensor")
    rois = ctx.shape(node.inputs[1])
    if rois is None or not isinstance(rois[0], int):
        raise Refuse("the ROI count must be static")
    if ctx.dtype(node.inputs[0]) != np.float32 or ctx.dtype(node.inputs[1]) != np.float32:
        raise Refuse("X and rois must be fp32")
    if node.attr("sampling_ratio") <= 0:
        raise Refuse("sampling_ratio 0 (adaptive: a sample count per ROI from its size) is data-dependent")
