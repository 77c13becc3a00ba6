"""NonMaxSuppression: corner (flipped) and center boxes, two classes, two batches, output cap,
score threshold, IoU threshold as a graph input, identical boxes (ties keep the lower index)."""
import numpy as np

from harness import OpCase

_BOXES = np.array([[[0.0, 0.0, 1.0, 1.0], [0.0, 0.1, 1.0, 1.1], [0.0, -0.1, 1.0, 0.9],
                    [0.0, 10.0, 1.0, 11.0], [0.0, 10.1, 1.0, 11.1], [0.0, 100.0, 1.0, 101.0]]], np.float32)
_FLIPPED = np.array([[[1.0, 1.0, 0.0, 0.0], [0.0, 0.1, 1.0, 1.1], [0.0, 0.9, 1.0, -0.1],
                      [0.0, 10.0, 1.0, 11.0], [1.0, 10.1, 0.0, 11.1], [1.0, 101.0, 0.0, 100.0]]], np.float32)
_CENTER = np.array([[[0.5, 0.5, 1.0, 1.0], [0.5, 0.6, 1.0, 1.0], [0.5, 0.4, 1.0, 1.0],
                     [0.5, 10.5, 1.0, 1.0], [0.5, 10.6, 1.0, 1.0], [0.5, 100.5, 1.0, 1.0]]], np.float32)
_SCORES = np.array([[[0.9, 0.75, 0.6, 0.95, 0.5, 0.3]]], np.float32)


def nms(id, boxes, scores, cap=3, iou=0.5, score=None, graph_iou=False, **attrs):
    inputs = {"boxes": boxes, "scores": scores}
    weights = {"max": np.array([cap], np.int64)}
    (inputs if graph_iou else weights)["iou"] = np.array([iou], np.float32)
    order = ["boxes", "scores", "max", "iou"]
    if score is not None:
        weights["score"] = np.array([score], np.float32)
        order.append("score")
    return OpCase(f"nonmaxsuppression_{id}", "NonMaxSuppression", inputs, attrs, weights, input_order=order,
                  opset=11, fp16=False)


CASES = [
    nms("suppress_by_iou", _BOXES, _SCORES),
    nms("score_threshold", _BOXES, _SCORES, score=0.4),
    nms("flipped", _FLIPPED, _SCORES),
    nms("center_point_box", _CENTER, _SCORES, center_point_box=1),
    nms("limit_output", _BOXES, _SCORES, cap=2),
    nms("two_classes", _BOXES, np.concatenate([_SCORES, _SCORES[:, :, ::-1]], axis=1)),
    nms("two_batches_graph_iou", np.concatenate([_BOXES, _FLIPPED]), np.concatenate([_SCORES, _SCORES[:, :, ::-1]]),
        graph_iou=True),
    nms("identical_boxes", np.tile(np.array([[[0, 0, 1, 1]]], np.float32), (1, 5, 1)), np.full((1, 1, 5), 0.9, np.float32)),
]


def _crowd(n, seed=0):
    """``n`` overlapping boxes in a 10x10 field, two classes of distinct scores."""
    rng = np.random.default_rng(seed)
    corner = rng.uniform(0, 10, (1, n, 2))
    boxes = np.concatenate([corner, corner + rng.uniform(0.5, 3, (1, n, 2))], axis=2).astype(np.float32)
    scores = np.stack([rng.permutation(n), rng.permutation(n)])[None].astype(np.float32) / n
    return boxes, scores


CASES.append(nms("300_boxes_crowded", *_crowd(300), cap=60, iou=0.3, score=0.1))

REFUSED = [
    (nms("zero_cap_refused", _BOXES, _SCORES, cap=0), "zero-size"),
]
