"""RoiAlign (opsets 10, 16): avg and max, half_pixel and output_half_pixel, spatial_scale, ROIs
partly outside the map, several batches, graph batch indices."""
import numpy as np

from harness import OpCase, rand

_ROIS = np.array([[0.0, 0.0, 9.0, 9.0], [0.0, 5.0, 4.0, 9.0], [5.0, 5.0, 9.0, 9.0], [-2.0, 7.5, 12.0, 11.0],
                  [3.3, 1.2, 3.5, 1.4]], np.float32)


def roi_align(id, opset=16, graph_indices=False, **attrs):
    inputs = {"X": rand(2, 3, 10, 10), "rois": _ROIS}
    weights = {"batch_indices": np.array([0, 1, 0, 1, 1], np.int64)}
    if graph_indices:
        inputs.update(weights)
        weights = {}
    attrs = dict(dict(output_height=5, output_width=4, sampling_ratio=2), **attrs)
    return OpCase(f"roialign_{id}", "RoiAlign", inputs, attrs, weights,
                  input_order=["X", "rois", "batch_indices"], opset=opset)


CASES = [
    roi_align("avg_output_half_pixel", coordinate_transformation_mode="output_half_pixel"),
    roi_align("avg_half_pixel", coordinate_transformation_mode="half_pixel"),
    roi_align("opset10_scale", opset=10, spatial_scale=0.5, sampling_ratio=3),
    roi_align("max", mode="max", coordinate_transformation_mode="output_half_pixel"),
    roi_align("graph_indices_1x1", graph_indices=True, output_height=1, output_width=1, sampling_ratio=1),
]

REFUSED = [
    (roi_align("adaptive_sampling_refused", sampling_ratio=0), "data-dependent"),
]
