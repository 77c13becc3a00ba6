"""Resize (opset 10-19: scales/sizes, axes, coordinate modes x nearest modes, linear modes,
downsampling, non-integer scales) and Upsample (opset 7-9)."""
from dataclasses import replace

import coremltools as ct
import numpy as np

from harness import OpCase, rand
from op_cases.shape import SymbolicOpCase

COORDS = ("half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric", "tf_half_pixel_for_nn",
          "half_pixel_symmetric")
NEAREST = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil")


def resize(id, x_shape, scales=None, sizes=None, opset=13, symbolic=None, **attrs):
    weights, order = {}, ["X"]
    if opset == 10:
        weights["scales"] = np.array(scales, np.float32)
        order.append("scales")
    else:
        order.append("")  # roi
        if scales is not None:
            weights["scales"] = np.array(scales, np.float32)
            order.append("scales")
        elif opset < 13:  # roi and scales are required inputs before opset 13: empty tensors
            weights.update(roi=np.zeros(0, np.float32), scales=np.zeros(0, np.float32),
                           sizes=np.array(sizes, np.int64))
            order = ["X", "roi", "scales", "sizes"]
        else:
            order += ["", "sizes"]
            weights["sizes"] = np.array(sizes, np.int64)
    extra = dict(symbolic={"X": symbolic}) if symbolic else {}
    cls = SymbolicOpCase if symbolic else OpCase
    return cls(f"resize_{id}", "Resize", {"X": rand(*x_shape)}, attrs, weights, input_order=order, opset=opset,
               **extra)


def upsample(id, x_shape, scales, opset=9, **attrs):
    if opset < 9:
        return OpCase(f"upsample_{id}", "Upsample", {"X": rand(*x_shape)}, {"scales": scales, **attrs}, opset=opset)
    return OpCase(f"upsample_{id}", "Upsample", {"X": rand(*x_shape)}, attrs,
                  {"scales": np.array(scales, np.float32)}, opset=opset)


CASES = [
    resize("opset10_nearest_x2", (1, 2, 3, 4), [1, 1, 2, 2], opset=10),
    resize("opset10_linear_x2", (1, 2, 3, 4), [1, 1, 2, 3], opset=10, mode="linear"),
    resize("opset10_nearest_down", (1, 2, 4, 6), [1, 1, 0.5, 0.5], opset=10),
    resize("opset10_nearest_fractional", (1, 1, 5, 7), [1, 1, 0.6, 2.5], opset=10),
    resize("opset10_linear_fractional", (1, 1, 5, 7), [1, 1, 0.6, 2.5], opset=10, mode="linear"),
    resize("opset11_sizes_nearest", (1, 2, 3, 4), sizes=[1, 2, 6, 12], opset=11),
    resize("rank3_last_axis", (2, 3, 5), [1, 1, 2]),
    resize("rank2_nearest", (3, 4), [2, 2]),
    resize("leading_axis_nearest", (1, 2, 3, 4), [1, 2, 1, 1]),
    resize("nearest_non_integer_scale", (1, 1, 5, 7), [1, 1, 1.5, 0.6]),
    resize("nearest_sizes_odd", (1, 2, 5, 4), sizes=[1, 2, 7, 3], coordinate_transformation_mode="asymmetric"),
    resize("nearest_down_x3_half_pixel", (1, 2, 9, 6), sizes=[1, 2, 3, 2]),
    resize("linear_down_half_pixel", (1, 2, 8, 6), [1, 1, 0.5, 0.5], mode="linear"),
    resize("linear_non_integer", (1, 2, 5, 7), [1, 1, 1.7, 0.75], mode="linear"),
    resize("linear_sizes_align_corners", (1, 3, 4, 5), sizes=[1, 3, 7, 9], mode="linear",
           coordinate_transformation_mode="align_corners"),
    resize("linear_pytorch_half_pixel_to_1", (1, 1, 4, 5), sizes=[1, 1, 1, 10], mode="linear",
           coordinate_transformation_mode="pytorch_half_pixel"),
    resize("linear_asymmetric", (1, 2, 3, 4), [1, 1, 2, 2.5], mode="linear",
           coordinate_transformation_mode="asymmetric"),
    resize("linear_leading_axis", (2, 3, 4, 5), [1, 2, 1, 1], mode="linear"),
    resize("axes_sizes", (1, 2, 4, 5), sizes=[8, 10], axes=[2, 3], opset=18, mode="linear"),
    resize("axes_scales_negative", (1, 2, 4, 5), [3.0], axes=[-1], opset=19),
    resize("keep_aspect_not_larger", (1, 2, 4, 6), sizes=[7, 20], axes=[2, 3], opset=18, mode="linear",
           keep_aspect_ratio_policy="not_larger"),
    resize("keep_aspect_not_smaller", (1, 2, 4, 6), sizes=[1, 2, 7, 8], opset=19,
           keep_aspect_ratio_policy="not_smaller"),
    resize("antialias_upsampling", (1, 1, 3, 4), [1, 1, 2, 2], opset=18, mode="linear", antialias=1),
    upsample("nearest_opset7", (1, 2, 3, 4), [1.0, 1.0, 2.0, 3.0], opset=7),
    upsample("nearest_fractional", (1, 1, 3, 4), [1.0, 1.0, 1.5, 2.5]),
    upsample("linear_fractional", (1, 1, 3, 4), [1.0, 1.0, 1.5, 2.5], mode="linear"),
    upsample("linear_opset9", (1, 2, 3, 4), [1.0, 1.0, 2.0, 2.0], mode="linear"),
] + [
    resize(f"nearest_{c}_{n}_x2".replace("round_prefer_", "r"), (1, 2, 3, 4), [1, 1, 2, 2],
           coordinate_transformation_mode=c, nearest_mode=n, opset=19)
    for c in COORDS for n in NEAREST
] + [
    resize(f"linear_{c}", (1, 2, 4, 3), [1, 1, 3, 2], mode="linear", coordinate_transformation_mode=c, opset=19)
    for c in COORDS if c != "tf_half_pixel_for_nn"
]

# Symbolic dims: the MIL output shape stays symbolic until the program runs.
CASES += [
    resize("symbolic_nearest_x2", (1, 3, 4, 4), [1, 1, 2, 2], symbolic={0: "n", 2: "h", 3: "w"}),
    resize("symbolic_linear_half_pixel_x2", (1, 3, 4, 5), [1, 1, 2, 2], mode="linear",
           symbolic={0: "n", 2: "h", 3: "w"}),
    resize("symbolic_linear_pytorch_half_pixel_x3_x1", (1, 2, 4, 5), [1, 1, 3, 1], mode="linear",
           coordinate_transformation_mode="pytorch_half_pixel", symbolic={2: "h"}),
    resize("symbolic_linear_align_corners_x2", (1, 2, 3, 4), [1, 1, 2, 2], mode="linear",
           coordinate_transformation_mode="align_corners", symbolic={2: "h", 3: "w"}),
    resize("symbolic_linear_asymmetric_ios16", (1, 2, 3, 4), [1, 1, 2, 4], mode="linear",
           coordinate_transformation_mode="asymmetric", symbolic={3: "w"}),
    resize("symbolic_nearest_asymmetric_x3", (2, 3, 4, 5), [1, 1, 3, 1], symbolic={2: "h"},
           coordinate_transformation_mode="asymmetric", nearest_mode="floor"),
]

REFUSED = [
    (resize("cubic", (1, 1, 4, 4), [1, 1, 2, 2], mode="cubic"), "cubic"),
    (resize("tf_crop_and_resize", (1, 1, 4, 4), [1, 1, 2, 2], mode="linear",
            coordinate_transformation_mode="tf_crop_and_resize"), "tf_crop_and_resize"),
    (resize("antialias_down", (1, 1, 8, 8), [1, 1, 0.5, 0.5], opset=18, mode="linear", antialias=1), "antialias"),
    (resize("symbolic_linear_non_integer", (1, 3, 4, 4), [1, 1, 1.5, 2], mode="linear", symbolic={2: "h"}),
     "symbolic"),
    (resize("symbolic_linear_asymmetric_ios15", (1, 2, 3, 4), [1, 1, 2, 4], mode="linear",
            coordinate_transformation_mode="asymmetric", symbolic={3: "w"}), "symbolic"),
    (resize("symbolic_nearest_align_corners", (1, 3, 4, 4), [1, 1, 2, 2], symbolic={2: "h"},
            coordinate_transformation_mode="align_corners", nearest_mode="ceil"), "depends on the input size"),
]

CASES = [replace(c, target=ct.target.iOS16) if c.id == "resize_symbolic_linear_asymmetric_ios16" else c
         for c in CASES]
