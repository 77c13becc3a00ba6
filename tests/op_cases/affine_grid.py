"""AffineGrid (opset 20): 2-D and 3-D, align_corners 0/1."""
import numpy as np

from harness import OpCase, rand


def affine_grid(id, theta_shape, size, **attrs):
    return OpCase(f"affinegrid_{id}", "AffineGrid", {"T": rand(*theta_shape, low=-1.5, high=1.5)}, attrs,
                  {"S": np.array(size, np.int64)}, opset=20)


CASES = [
    affine_grid("2d", (2, 2, 3), [2, 3, 5, 6]),
    affine_grid("2d_align_corners", (2, 2, 3), [2, 3, 5, 6], align_corners=1),
    affine_grid("3d", (2, 3, 4), [2, 1, 3, 4, 5]),
    affine_grid("3d_align_corners", (1, 3, 4), [1, 2, 2, 3, 4], align_corners=1),
]
