"""ONNX NonMaxSuppression -> greedy suppression unrolled over the (static, capped) box count:
pairwise IoU, a stable descending ``argsort`` of each class's scores, one keep decision per rank
(kept earlier box with IoU > threshold suppresses), the per-class output cap by ``cumsum``, then
``non_zero`` lists (batch, class, rank) in ONNX's order. MIL non_maximum_suppression is not used:
its fixed-size, per-batch outputs do not give ONNX's per-class selected_indices."""
from __future__ import annotations

import numpy as np
from coremltools.converters.mil import Builder as mb

from ..backend.convert.registry import op_builder
from ._common import Refuse, is_static, require_const

MAX_BOXES = 128  # one keep decision per box: the suppression unrolls over the boxes


def _corners(ctx, boxes, center: bool):
    """[B, n, 4] -> y1, x1, y2, x2 each [B, n] with y1 <= y2, x1 <= x2."""
    parts = [mb.slice_by_index(x=boxes, begin=[0, 0, i], end=list(boxes.shape[:2]) + [i + 1],
                               squeeze_mask=[False, False, True], name=ctx.tmp(f"coord{i}"))
             for i in range(4)]
    if center:  # [x_center, y_center, width, height]
        xc, yc, w, h = parts
        hw = mb.mul(x=w, y=np.float32(0.5), name=ctx.tmp("half_w"))
        hh = mb.mul(x=h, y=np.float32(0.5), name=ctx.tmp("half_h"))
        return (mb.sub(x=yc, y=hh, name=ctx.tmp("y1")),
                mb.sub(x=xc, y=hw, name=ctx.tmp("x1")),
                mb.add(x=yc, y=hh, name=ctx.tmp("y2")),
                mb.add(x=xc, y=hw, name=ctx.tmp("x2")))
    a_y, a_x, b_y, b_x = parts
    return (mb.minimum(x=a_y, y=b_y, name=ctx.tmp("y1")),
            mb.minimum(x=a_x, y=b_x, name=ctx.tmp("x1")),
            mb.maximum(x=a_y, y=b_y, name=ctx.tmp("y2")),
            mb.maximum(x=a_x, y=b_x, name=ctx.tmp("x2")))


def _overlaps(ctx, boxes, center: bool, threshold, out: str):
    """[B, n, n] bool: IoU > threshold (false when either area or the intersection is empty)."""
    y1, x1, y2, x2 = _corners(ctx, boxes, center)

    def rows(v):
        return mb.expand_dims(x=v, axes=[2], name=ctx.tmp("rows"))

    def cols(v):
        return mb.expand_dims(x=v, axes=[1], name=ctx.tmp("cols"))

    ih = mb.sub(x=mb.minimum(x=rows(y2), y=cols(y2), name=ctx.tmp("iy2")),
                y=mb.maximum(x=rows(y1), y=cols(y1), name=ctx.tmp("iy1")), name=ctx.tmp("ih"))
    iw = mb.sub(x=mb.minimum(x=rows(x2), y=cols(x2), name=ctx.tmp("ix2")),
                y=mb.maximum(x=rows(x1), y=cols(x1), name=ctx.tmp("ix1")), name=ctx.tmp("iw"))
    inter = mb.mul(x=mb.relu(x=ih, name=ctx.tmp("ih_pos")),
                   y=mb.relu(x=iw, name=ctx.tmp("iw_pos")), name=ctx.tmp("inter"))
    area = mb.mul(x=mb.sub(x=y2, y=y1, name=ctx.tmp("h")),
                  y=mb.sub(x=x2, y=x1, name=ctx.tmp("w")), name=ctx.tmp("area"))
    union = mb.sub(x=mb.add(x=rows(area), y=cols(area), name=ctx.tmp("areas")), y=inter,
                   name=ctx.tmp("union"))
    # iou > t  <=>  inter > t * union (union > 0); both areas and the intersection must be positive
    over = mb.greater(x=inter, y=mb.mul(x=union, y=threshold, name=ctx.tmp("t_union")),
                      name=ctx.tmp("over"))
    positive = mb.logical_and(
        x=mb.greater(x=inter, y=np.float32(0), name=ctx.tmp("inter_pos")),
        y=mb.logical_and(x=mb.greater(x=rows(area), y=np.float32(0), name=ctx.tmp("area_i")),
                         y=mb.greater(x=cols(area), y=np.float32(0), name=ctx.tmp("area_j")),
                         name=ctx.tmp("areas_pos")), name=ctx.tmp("positive"))
    return mb.logical_and(x=over, y=positive, name=ctx.tmp("suppresses"))


def _scalar_input(ctx, node, i: int, default: float, what: str):
    if not node.has_input(i):
        return np.float32(default)
    value = ctx.const(node.inputs[i])
    if value is not None:
        return np.float32(value.reshape(-1)[0])
    return mb.reshape(x=ctx.var(node.inputs[i]), shape=np.array([1], np.int32), name=ctx.tmp(f"{what}"))


@op_builder("NonMaxSuppression", min_opset=10)
def nms(node, ctx):
    boxes, scores = ctx.input(node, 0), ctx.input(node, 1)
    out = node.outputs[0]
    batch, classes, n = scores.shape
    cap = int(ctx.const(node.inputs[2]).reshape(-1)[0])
    iou_t = _scalar_input(ctx, node, 3, 0.0, "iou_threshold")
    overlaps = _overlaps(ctx, boxes, bool(node.attr("center_point_box")), iou_t, out)  # [B, n, n]
    order = mb.argsort(x=scores, axis=-1, ascending=False, name=ctx.tmp("order"))  # [B, K, n]
    sorted_scores = mb.gather_along_axis(x=scores, indices=order, axis=2, name=ctx.tmp("sorted"))
    if node.has_input(4):
        valid = mb.greater(x=sorted_scores, y=_scalar_input(ctx, node, 4, 0.0, "score_threshold"),
                           name=ctx.tmp("valid"))
    else:
        valid = mb.greater_equal(x=sorted_scores, y=sorted_scores, name=ctx.tmp("valid"))
    # overlaps between ranks: [B, K, n, n][b, k, p, q] = overlaps[b, order[p], order[q]]
    o = mb.cast(x=overlaps, dtype="fp32", name=ctx.tmp("overlaps_f"))
    o = mb.tile(x=mb.expand_dims(x=o, axes=[1], name=ctx.tmp("o4")), reps=[1, classes, 1, 1],
                name=ctx.tmp("o_classes"))
    rows_idx = mb.tile(x=mb.expand_dims(x=order, axes=[3], name=ctx.tmp("order_rows")), reps=[1, 1, 1, n],
                       name=ctx.tmp("rows_idx"))
    o = mb.gather_along_axis(x=o, indices=rows_idx, axis=2, name=ctx.tmp("o_rows"))
    cols_idx = mb.tile(x=mb.expand_dims(x=order, axes=[2], name=ctx.tmp("order_cols")), reps=[1, 1, n, 1],
                       name=ctx.tmp("cols_idx"))
    o = mb.gather_along_axis(x=o, indices=cols_idx, axis=3, name=ctx.tmp("o_ranks"))
    valid_f = mb.cast(x=valid, dtype="fp32", name=ctx.tmp("valid_f"))
    keeps = []
    for p in range(n):
        v = mb.slice_by_index(x=valid_f, begin=[0, 0, p], end=[batch, classes, p + 1], name=ctx.tmp("v"))
        if p:
            kept = mb.concat(values=keeps, axis=2, name=ctx.tmp("kept")) if p > 1 else keeps[0]
            row = mb.slice_by_index(x=o, begin=[0, 0, p, 0], end=[batch, classes, p + 1, p],
                                    squeeze_mask=[False, False, True, False], name=ctx.tmp("row"))
            hit = mb.reduce_max(x=mb.mul(x=kept, y=row, name=ctx.tmp("hits")), axes=[2], keep_dims=True,
                                name=ctx.tmp("hit"))
            free = mb.sub(x=np.float32(1), y=hit, name=ctx.tmp("free"))
            v = mb.mul(x=v, y=free, name=ctx.tmp("keep"))
        keeps.append(v)
    keep = mb.concat(values=keeps, axis=2, name=ctx.tmp("keep_all")) if n > 1 else keeps[0]
    count = mb.cumsum(x=keep, axis=2, name=ctx.tmp("count"))
    within = mb.less_equal(x=count, y=np.float32(cap), name=ctx.tmp("within_cap"))
    chosen = mb.logical_and(x=mb.cast(x=keep, dtype="bool", name=ctx.tmp("keep_b")), y=within,
                            name=ctx.tmp("chosen"))
    where = mb.non_zero(x=chosen, name=ctx.tmp("where"))  # [M, 3]: (b, k, rank)
    box = mb.gather_nd(x=order, indices=where, name=ctx.tmp("box"))
    bk = mb.slice_by_index(x=where, begin=[0, 0], end=[0, 2], end_mask=[True, False], name=ctx.tmp("bk"))
    box = mb.expand_dims(x=box, axes=[1], name=ctx.tmp("box_col"))
    ctx.set_output(node, mb.concat(values=[bk, box], axis=1, name=ctx.mil_name(out)))


@nms.check
def _(node, ctx):
    boxes, scores = ctx.shape(node.inputs[0]), ctx.shape(node.inputs[1])
    if not (is_static(boxes) and is_static(scores)):
        raise Refuse("boxes and scores need static shapes (the suppression unrolls over the boxes)")
    if scores[2] > MAX_BOXES:
        raise Refuse(f"{scores[2]} boxes exceed {MAX_BOXES} unrolled suppression steps")
    if ctx.dtype(node.inputs[0]) != np.float32 or ctx.dtype(node.inputs[1]) != np.float32:
        raise Refuse("boxes and scores must be fp32")
    if not node.has_input(2):
        raise Refuse("max_output_boxes_per_class is absent (0: no output; CoreML has no zero-size tensors)")
    if int(require_const(ctx, node.inputs[2], "max_output_boxes_per_class").reshape(-1)[0]) <= 0:
        raise Refuse("max_output_boxes_per_class <= 0 selects nothing (a zero-size output; CoreML has none)")
