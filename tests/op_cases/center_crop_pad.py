"""CenterCropPad (opset 18): crop, pad, both, odd differences, axes (negative too)."""
import numpy as np

from harness import OpCase, rand


def center_crop_pad(id, shape, target, **attrs):
    return OpCase(f"centercroppad_{id}", "CenterCropPad", {"X": rand(*shape)}, attrs,
                  {"S": np.array(target, np.int64)}, opset=18)


CASES = [
    center_crop_pad("crop", (20, 10, 3), [10, 7, 3]),
    center_crop_pad("pad", (10, 7, 3), [20, 10, 3]),
    center_crop_pad("crop_and_pad_odd", (20, 8, 3), [11, 13, 3]),
    center_crop_pad("axes_hwc", (20, 8, 3), [9, 11], axes=[0, 1]),
    center_crop_pad("negative_axes", (3, 20, 8), [9, 11], axes=[-2, -1]),
    center_crop_pad("identity", (2, 3), [2, 3]),
]
