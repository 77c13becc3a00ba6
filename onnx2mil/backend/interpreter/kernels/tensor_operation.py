"""MIL tensor operations (iOS15-iOS17 tensor_operation.py, plus ``select``): creation, padding,
sorting, splitting and joining of tensors.

Sorting is stable, so ties keep their index order (MIL leaves the order of ties unspecified).
"""
from __future__ import annotations

import numpy as np

from .registry import kernel, specialize


def _wide(x):
    x = np.asarray(x)
    return x.astype(np.float32) if x.dtype == np.float16 else x


@kernel("band_part")
def band_part(op, x, lower=-1, upper=-1):
    x = np.asarray(x)
    rows, cols = x.shape[-2:]
    m = np.arange(rows)[:, None]
    n = np.arange(cols)[None, :]
    keep = ((lower < 0) | (m - n <= lower)) & ((upper < 0) | (n - m <= upper))
    return np.where(keep, x, np.zeros((), x.dtype))


@kernel("cumsum")
def cumsum(op, x, axis=0, exclusive=False, reverse=False):
    x = _wide(x)
    axis = int(axis) % x.ndim
    if reverse:
        x = np.flip(x, axis)
    out = np.cumsum(x, axis=axis, dtype=x.dtype)
    if exclusive:
        out = out - x
    return np.flip(out, axis) if reverse else out


@kernel("fill")
def fill(op, shape, value=0.0):
    return np.full([int(s) for s in np.atleast_1d(shape)], value)


@kernel("fill_like")
def fill_like(op, ref_tensor, value=0.0):
    return np.full(np.shape(ref_tensor), value)


@kernel("non_zero")
def non_zero(op, x):
    return np.transpose(np.nonzero(np.asarray(x))).astype(np.int32)


@kernel("one_hot")
def one_hot(op, indices, one_hot_vector_size, axis=-1, on_value=1, off_value=0):
    indices = np.asarray(indices).astype(np.int64)
    depth = int(one_hot_vector_size)
    axis = int(axis) % (indices.ndim + 1)
    hot = np.expand_dims(indices, axis) == np.arange(depth).reshape(
        [depth if d == axis else 1 for d in range(indices.ndim + 1)])
    return np.where(hot, on_value, off_value)


@kernel("pad")
def pad(op, x, pad, mode="constant", constant_val=0.0):
    x = np.asarray(x)
    pad = [int(p) for p in np.asarray(pad).reshape(-1)]
    widths = [(0, 0)] * (x.ndim - len(pad) // 2) + [(pad[2 * i], pad[2 * i + 1]) for i in range(len(pad) // 2)]
    if mode == "constant":
        return np.pad(x, widths, mode="constant", constant_values=constant_val)
    if mode == "reflect":
        return np.pad(x, widths, mode="reflect")
    if mode == "replicate":
        return np.pad(x, widths, mode="edge")
    raise ValueError(f"pad '{op.name}': mode '{mode}' is not a MIL pad mode")


def _pad_fills(shape: tuple, widths: list, mode: str):
    """(output shape, interior index, [(target index, source index)] per padded side) that
    reproduce np.pad's ``edge``/``reflect`` values by copies inside the output, axis by axis; None
    where np.pad itself must run (empty dims, reflections wider than the dim)."""
    if any(d == 0 for d in shape) or (mode == "reflect" and any(max(w) > d - 1 for w, d in zip(widths, shape) if any(w))):
        return None
    out_shape = tuple(d + b + e for d, (b, e) in zip(shape, widths))
    interior = tuple(slice(b, b + d) for d, (b, _) in zip(shape, widths))
    fills = []
    for axis, ((b, e), d) in enumerate(zip(widths, shape)):
        lead = (slice(None),) * axis
        if b:
            source = slice(b, b + 1) if mode == "edge" else slice(2 * b, b, -1)
            fills.append((lead + (slice(0, b),), lead + (source,)))
        if e:
            stop = b + d - 2 - e
            source = slice(b + d - 1, b + d) if mode == "edge" else slice(b + d - 2, stop if stop >= 0 else None, -1)
            fills.append((lead + (slice(b + d, b + d + e),), lead + (source,)))
    return out_shape, interior, fills


@specialize("pad")
def pad_plan(op, static, dynamic):
    """Constant pads: np.pad's result built by one allocation and slice copies (np.pad's own
    bookkeeping costs more than the copies on small tensors)."""
    if [name for name, _ in dynamic] != ["x"] or "pad" not in static:
        return None
    spec = dynamic[0][1]
    mode = static.get("mode", "constant")
    np_mode = {"constant": "constant", "reflect": "reflect", "replicate": "edge"}.get(mode)
    pad_values = [int(p) for p in np.asarray(static["pad"]).reshape(-1)]
    if spec.scalar or spec.rank is None or np_mode is None or any(p < 0 for p in pad_values) or \
            len(pad_values) % 2 or len(pad_values) // 2 > spec.rank:
        return None
    widths = [(0, 0)] * (spec.rank - len(pad_values) // 2) + \
        [(pad_values[2 * i], pad_values[2 * i + 1]) for i in range(len(pad_values) // 2)]
    constant_val = static.get("constant_val", 0.0)
    cache: dict = {}

    def run(x):
        found = cache.get(x.shape)
        if found is None:
            found = cache[x.shape] = _pad_fills(x.shape, widths, np_mode) if x.ndim == len(widths) else False
        if not found:
            return pad(op, x, static["pad"], mode, constant_val)
        out_shape, interior, fills = found
        if np_mode == "constant":
            out = np.full(out_shape, constant_val, dtype=x.dtype)
            out[interior] = x
            return out
        out = np.empty(out_shape, dtype=x.dtype)
        out[interior] = x
        for target, source in fills:
            out[target] = out[source]
        return out

    return run


@kernel("range_1d")
def range_1d(op, start, end, step):
    return np.arange(start, end, step)


@kernel("tile")
def tile(op, x, reps):
    return np.tile(np.asarray(x), [int(r) for r in np.atleast_1d(reps)])


def _sort_order(x, axis, ascending):
    key = x.astype(np.float64)
    return np.argsort(key if ascending else -key, axis=axis, kind="stable")


@kernel("argsort")
def argsort(op, x, axis=-1, ascending=False):
    return _sort_order(np.asarray(x), int(axis), bool(ascending)).astype(np.int32)


@kernel("topk")
def topk(op, x, k=1, axis=-1, ascending=False, sort=True, return_indices=True,
         output_indices_dtype="int32"):
    x = np.asarray(x)
    axis = int(axis) % x.ndim
    k = x.shape[axis] if int(k) == -1 else int(k)
    indices = np.take(_sort_order(x, axis, bool(ascending)), np.arange(k), axis=axis)
    values = np.take_along_axis(x, indices, axis=axis)
    if not return_indices:
        return values
    return values, indices.astype(np.uint16 if output_indices_dtype == "uint16" else np.int32)


@kernel("flatten2d")
def flatten2d(op, x, axis=1):
    x = np.asarray(x)
    axis = int(axis) % x.ndim if int(axis) < 0 else int(axis)
    return x.reshape(int(np.prod(x.shape[:axis])), int(np.prod(x.shape[axis:])))


@kernel("shape")
def shape(op, x):
    return np.array(np.shape(x), dtype=np.int32)


@kernel("concat")
def concat(op, values, axis, interleave=False):
    values = [np.asarray(v) for v in values]
    axis = int(axis)
    if not interleave:
        return np.concatenate(values, axis=axis)
    axis %= values[0].ndim
    stacked = np.stack(values, axis=axis + 1)
    out_shape = list(values[0].shape)
    out_shape[axis] *= len(values)
    return stacked.reshape(out_shape)


@kernel("split")
def split(op, x, axis, num_splits=None, split_sizes=None):
    x = np.asarray(x)
    axis = int(axis) % x.ndim
    if split_sizes is not None:
        bounds = np.cumsum([int(s) for s in np.atleast_1d(split_sizes)])[:-1]
        return tuple(np.split(x, bounds, axis=axis))
    return tuple(np.split(x, int(num_splits), axis=axis))


@kernel("stack")
def stack(op, values, axis):
    return np.stack([np.asarray(v) for v in values], axis=int(axis))


@kernel("select")
def select(op, cond, a, b):
    return np.where(np.asarray(cond).astype(bool), a, b)


def _nms_one_batch(boxes, scores, iou_threshold, score_threshold, max_boxes, per_class):
    """Indices kept for one batch: (B, 4) center-size boxes, (B, K) scores."""
    best = np.max(scores, axis=-1)
    label = np.argmax(scores, axis=-1)
    x0 = boxes[:, 0] - boxes[:, 2] / 2
    x1 = boxes[:, 0] + boxes[:, 2] / 2
    y0 = boxes[:, 1] - boxes[:, 3] / 2
    y1 = boxes[:, 1] + boxes[:, 3] / 2
    area = boxes[:, 2] * boxes[:, 3]
    kept: list[int] = []
    for i in np.argsort(-best, kind="stable"):
        if best[i] <= score_threshold or len(kept) == max_boxes:
            continue
        suppressed = False
        for j in kept:
            if per_class and label[i] != label[j]:
                continue
            inter = max(0.0, min(x1[i], x1[j]) - max(x0[i], x0[j])) * max(0.0, min(y1[i], y1[j]) - max(y0[i], y0[j]))
            union = area[i] + area[j] - inter
            if union > 0 and inter / union > iou_threshold:
                suppressed = True
                break
        if not suppressed:
            kept.append(int(i))
    return kept


def _nms(boxes, scores, iou_threshold, score_threshold, max_boxes, per_class):
    """(n, B, 4) boxes and (n, B, K) scores -> padded boxes, scores, indices (-1 pad), counts."""
    n, _, k = scores.shape
    out_boxes = np.zeros((n, max_boxes, 4), np.float32)
    out_scores = np.zeros((n, max_boxes, k), np.float32)
    out_indices = np.full((n, max_boxes), -1, np.int32)
    counts = np.zeros((n,), np.int32)
    for b in range(n):
        kept = _nms_one_batch(boxes[b], scores[b], iou_threshold, score_threshold, max_boxes, per_class)
        counts[b] = len(kept)
        out_boxes[b, :len(kept)] = boxes[b, kept]
        out_scores[b, :len(kept)] = scores[b, kept]
        out_indices[b, :len(kept)] = kept
    return out_boxes, out_scores, out_indices, counts


@kernel("non_maximum_suppression")
def non_maximum_suppression(op, boxes, scores, iou_threshold, max_boxes, score_threshold=None,
                            per_class_suppression=False):
    boxes, scores = _wide(boxes).astype(np.float32), _wide(scores).astype(np.float32)
    if score_threshold is None:  # iOS17: boxes/scores are [n, 4|K, B], no threshold, no count output
        out_boxes, out_scores, out_indices, _ = _nms(
            np.swapaxes(boxes, 1, 2), np.swapaxes(scores, 1, 2), float(iou_threshold), -np.inf,
            int(max_boxes), bool(per_class_suppression))
        return np.swapaxes(out_boxes, 1, 2), np.swapaxes(out_scores, 1, 2), out_indices
    return _nms(boxes, scores, float(iou_threshold), float(score_threshold), int(max_boxes),
                bool(per_class_suppression))
