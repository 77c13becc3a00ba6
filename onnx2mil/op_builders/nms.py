"""ONNX NonMaxSuppression -> greedy suppression over the (static, capped) box count: pairwise IoU,
a stable descending ``argsort`` of each class's scores, one keep decision per rank in a
``while_loop`` (kept earlier box with IoU > threshold suppresses), the per-class output cap by ``cumsum``, then
``non_zero`` lists (batch, class, rank) in ONNX's order. MIL non_maximum_suppression is not used:
its fixed-size, per-batch outputs do not give ONNX's per-class selected_indices."""
from __future__ import annotations

import numpy as np
from coremltools.converters.mil import Builder as mb

from ..backend.convert.registry import op_builder

MAX_BOXES = 4096  # the pairwise overlaps are [B, K, n, n] fp32 per class: 64 MB per class at the cap


def _corners(ctx, boxes, center: bool, out: str):
    """[B, n, 4] -> y1, x1, y2, x2 each [B, n] with y1 <= y2, x1 <= x2."""
    parts = [mb.slice_by_index(x=boxes, begin=[0, 0, i], end=list(boxes.shape[:2]) + [i + 1],
                               squeeze_mask=[False, False, True], name=ctx.scratch(f"{out}_coord{i}"))
             for i in range(4)]
    if center:  # [x_center, y_center, width, height]
        xc, yc, w, h = parts
        hw = mb.mul(x=w, y=np.float32(0.5), name=ctx.scratch(f"{out}_half_w"))
        hh = mb.mul(x=h, y=np.float32(0.5), name=ctx.scratch(f"{out}_half_h"))
        return (mb.sub(x=yc, y=hh, name=ctx.scratch(f"{out}_y1")),
                mb.sub(x=xc, y=hw, name=ctx.scratch(f"{out}_x1")),
                mb.add(x=yc, y=hh, name=ctx.scratch(f"{out}_y2")),
                mb.add(x=xc, y=hw, name=ctx.scratch(f"{out}_x2")))
    a_y, a_x, b_y, b_x = parts
    return (mb.minimum(x=a_y, y=b_y, name=ctx.scratch(f"{out}_y1")),
            mb.minimum(x=a_x, y=b_x, name=ctx.scratch(f"{out}_x1")),
            mb.maximum(x=a_y, y=b_y, name=ctx.scratch(f"{out}_y2")),
            mb.maximum(x=a_x, y=b_x, name=ctx.scratch(f"{out}_x2")))


def _overlaps(ctx, boxes, center: bool, threshold, out: str):
    """[B, n, n] bool: IoU > threshold (false when either area or the intersection is empty)."""
    y1, x1, y2, x2 = _corners(ctx, boxes, center, out)

    def rows(v):
        return mb.expand_dims(x=v, axes=[2], name=ctx.scratch(f"{out}_rows"))

    def cols(v):
        return mb.expand_dims(x=v, axes=[1], name=ctx.scratch(f"{out}_cols"))

    ih = mb.sub(x=mb.minimum(x=rows(y2), y=cols(y2), name=ctx.scratch(f"{out}_iy2")),
                y=mb.maximum(x=rows(y1), y=cols(y1), name=ctx.scratch(f"{out}_iy1")), name=ctx.scratch(f"{out}_ih"))
    iw = mb.sub(x=mb.minimum(x=rows(x2), y=cols(x2), name=ctx.scratch(f"{out}_ix2")),
                y=mb.maximum(x=rows(x1), y=cols(x1), name=ctx.scratch(f"{out}_ix1")), name=ctx.scratch(f"{out}_iw"))
    inter = mb.mul(x=mb.relu(x=ih, name=ctx.scratch(f"{out}_ih_pos")),
                   y=mb.relu(x=iw, name=ctx.scratch(f"{out}_iw_pos")), name=ctx.scratch(f"{out}_inter"))
    area = mb.mul(x=mb.sub(x=y2, y=y1, name=ctx.scratch(f"{out}_h")),
                  y=mb.sub(x=x2, y=x1, name=ctx.scratch(f"{out}_w")), name=ctx.scratch(f"{out}_area"))
    union = mb.sub(x=mb.add(x=rows(area), y=cols(area), name=ctx.scratch(f"{out}_areas")), y=inter,
                   name=ctx.scratch(f"{out}_union"))
    # iou > t  <=>  inter > t * union (union > 0); both areas and the intersection must be positive
    over = mb.greater(x=inter, y=mb.mul(x=union, y=threshold, name=ctx.scratch(f"{out}_t_union")),
                      name=ctx.scratch(f"{out}_over"))
    positive = mb.logical_and(
        x=mb.greater(x=inter, y=np.float32(0), name=ctx.scratch(f"{out}_inter_pos")),
        y=mb.logical_and(x=mb.greater(x=rows(area), y=np.float32(0), name=ctx.scratch(f"{out}_area_i")),
                         y=mb.greater(x=cols(area), y=np.float32(0), name=ctx.scratch(f"{out}_area_j")),
                         name=ctx.scratch(f"{out}_areas_pos")), name=ctx.scratch(f"{out}_positive"))
    return mb.logical_and(x=over, y=positive, name=ctx.scratch(f"{out}_suppresses"))


def _scalar_input(ctx, node, i: int, default: float, out: str, what: str):
    if not node.has_input(i):
        return np.float32(default)
    value = ctx.const(node.inputs[i])
    if value is not None:
        return np.float32(value.reshape(-1)[0])
    return mb.reshape(x=ctx.var(node.inputs[i]), shape=np.array([1], np.int32), name=ctx.scratch(f"{out}_{what}"))


def _suppress(ctx, valid, overlaps, n: int, out: str):
    """[B, K, n] 1/0 keep decisions in rank order: rank p is kept if valid and no kept earlier rank
    suppresses it. One ``while_loop`` step per rank writes keep[..., p] (undecided ranks hold 0, so
    the max over all ranks sees the earlier ones only): the op count does not grow with n."""
    def cond(p, keep):
        return mb.less(x=p, y=np.int32(n), name=ctx.scratch(f"{out}_more"))

    def body(p, keep):
        row = mb.gather(x=overlaps, indices=p, axis=2, name=ctx.scratch(f"{out}_row"))  # [B, K, n]
        hit = mb.reduce_max(x=mb.mul(x=keep, y=row, name=ctx.scratch(f"{out}_hits")), axes=[2], keep_dims=True,
                            name=ctx.scratch(f"{out}_hit"))
        v = mb.gather(x=valid, indices=mb.expand_dims(x=p, axes=[0], name=ctx.scratch(f"{out}_p")), axis=2,
                      name=ctx.scratch(f"{out}_v"))  # [B, K, 1]
        decision = mb.mul(x=v, y=mb.sub(x=np.float32(1), y=hit, name=ctx.scratch(f"{out}_free")),
                          name=ctx.scratch(f"{out}_decision"))
        keep = mb.scatter(data=keep, indices=mb.expand_dims(x=p, axes=[0], name=ctx.scratch(f"{out}_at")),
                          updates=decision, axis=2, mode="update", name=ctx.scratch(f"{out}_kept"))
        return mb.add(x=p, y=np.int32(1), name=ctx.scratch(f"{out}_next")), keep

    undecided = mb.mul(x=valid, y=np.float32(0), name=ctx.scratch(f"{out}_undecided"))
    return mb.while_loop(_cond=cond, _body=body, loop_vars=(np.int32(0), undecided),
                         name=ctx.scratch(f"{out}_suppression"))[1]


@op_builder("NonMaxSuppression", min_opset=10)
def nms(node, ctx):
    boxes, scores = ctx.input(node, 0), ctx.input(node, 1)
    out = node.outputs[0]
    batch, classes, n = scores.shape
    cap = int(ctx.const(node.inputs[2]).reshape(-1)[0])
    iou_t = _scalar_input(ctx, node, 3, 0.0, out, "iou_threshold")
    overlaps = _overlaps(ctx, boxes, bool(node.attr("center_point_box")), iou_t, out)  # [B, n, n]
    order = mb.argsort(x=scores, axis=-1, ascending=False, name=ctx.scratch(f"{out}_order"))  # [B, K, n]
    sorted_scores = mb.gather_along_axis(x=scores, indices=order, axis=2, name=ctx.scratch(f"{out}_sorted"))
    if node.has_input(4):
        valid = mb.greater(x=sorted_scores, y=_scalar_input(ctx, node, 4, 0.0, out, "score_threshold"),
                           name=ctx.scratch(f"{out}_valid"))
    else:
        valid = mb.greater_equal(x=sorted_scores, y=sorted_scores, name=ctx.scratch(f"{out}_valid"))
    # overlaps between ranks: [B, K, n, n][b, k, p, q] = overlaps[b, order[p], order[q]]
    o = mb.cast(x=overlaps, dtype="fp32", name=ctx.scratch(f"{out}_overlaps_f"))
    o = mb.tile(x=mb.expand_dims(x=o, axes=[1], name=ctx.scratch(f"{out}_o4")), reps=[1, classes, 1, 1],
                name=ctx.scratch(f"{out}_o_classes"))
    rows_idx = mb.tile(x=mb.expand_dims(x=order, axes=[3], name=ctx.scratch(f"{out}_order_rows")), reps=[1, 1, 1, n],
                       name=ctx.scratch(f"{out}_rows_idx"))
    o = mb.gather_along_axis(x=o, indices=rows_idx, axis=2, name=ctx.scratch(f"{out}_o_rows"))
    cols_idx = mb.tile(x=mb.expand_dims(x=order, axes=[2], name=ctx.scratch(f"{out}_order_cols")), reps=[1, 1, n, 1],
                       name=ctx.scratch(f"{out}_cols_idx"))
    o = mb.gather_along_axis(x=o, indices=cols_idx, axis=3, name=ctx.scratch(f"{out}_o_ranks"))
    valid_f = mb.cast(x=valid, dtype="fp32", name=ctx.scratch(f"{out}_valid_f"))
    keep = _suppress(ctx, valid_f, o, n, out)
    count = mb.cumsum(x=keep, axis=2, name=ctx.scratch(f"{out}_count"))
    within = mb.less_equal(x=count, y=np.float32(cap), name=ctx.scratch(f"{out}_within_cap"))
    chosen = mb.logical_and(x=mb.cast(x=keep, dtype="bool", name=ctx.scratch(f"{out}_keep_b")), y=within,
                            name=ctx.scratch(f"{out}_chosen"))
    where = mb.non_zero(x=chosen, name=ctx.scratch(f"{out}_where"))  # [M, 3]: (b, k, rank)
    box = mb.gather_nd(x=order, indices=where, name=ctx.scratch(f"{out}_box"))
    bk = mb.slice_by_index(x=where, begin=[0, 0], end=[0, 2], end_mask=[True, False], name=ctx.scratch(f"{out}_bk"))
    box = mb.expand_dims(x=box, axes=[1], name=ctx.scratch(f"{out}_box_col"))
    ctx.set_output(node, mb.concat(values=[bk, box], axis=1, name=ctx.mil_name(out)))


@nms.check
def _(node, ctx):
    boxes, scores = ctx.shape(node.inputs[0]), ctx.shape(node.inputs[1])
    if boxes is None or scores is None or not all(isinstance(d, int) for d in list(boxes) + list(scores)):
        return "boxes and scores need static shapes"
    if scores[2] > MAX_BOXES:
        return f"{scores[2]} boxes exceed {MAX_BOXES} (pairwise overlaps [B, K, n, n] per class)"
    if ctx.dtype(node.inputs[0]) != np.float32 or ctx.dtype(node.inputs[1]) != np.float32:
        return "boxes and scores must be fp32"
    if not node.has_input(2) or ctx.const(node.inputs[2]) is None:
        return "max_output_boxes_per_class must be a constant (absent means 0: no output)"
    if int(ctx.const(node.inputs[2]).reshape(-1)[0]) <= 0:
        return "max_output_boxes_per_class <= 0 selects nothing (a zero-size output; CoreML has none)"
    return None
