"""Squeeze/Unsqueeze: axes attribute (opset < 13) and constant input (>= 13), negative axes,
no axes (every size-1 dim), scalar results and scalar inputs."""
import numpy as np

from harness import OpCase, rand


def squeeze(id, x_shape, axes=None, opset=13):
    if axes is None:
        return OpCase(f"squeeze_{id}", "Squeeze", {"X": rand(*x_shape)}, opset=opset)
    if opset < 13:
        return OpCase(f"squeeze_{id}", "Squeeze", {"X": rand(*x_shape)}, {"axes": axes}, opset=opset)
    return OpCase(f"squeeze_{id}", "Squeeze", {"X": rand(*x_shape)}, weights={"A": np.array(axes, np.int64)},
                  opset=opset)


def unsqueeze(id, x, axes, opset=13):
    if opset < 13:
        return OpCase(f"unsqueeze_{id}", "Unsqueeze", {"X": x}, {"axes": axes}, opset=opset)
    return OpCase(f"unsqueeze_{id}", "Unsqueeze", {"X": x}, weights={"A": np.array(axes, np.int64)}, opset=opset)


CASES = [
    squeeze("attr", (1, 3, 1, 4), [0, 2], opset=11),
    squeeze("attr_negative", (2, 1, 4), [-2], opset=12),
    squeeze("input", (1, 3, 1, 4), [2]),
    squeeze("input_negative", (3, 4, 1), [-1], opset=21),
    squeeze("all_ones", (1, 3, 1, 4, 1)),
    squeeze("all_ones_opset11", (1, 3, 1), opset=11),
    squeeze("to_scalar", (1, 1)),
    squeeze("to_scalar_axes", (1,), [0], opset=18),
    unsqueeze("attr", rand(3, 4), [0, 3], opset=11),
    unsqueeze("attr_negative", rand(3, 4), [-1], opset=12),
    unsqueeze("input", rand(3, 4), [1]),
    unsqueeze("input_unsorted_negative", rand(3, 4), [-1, 0, 2], opset=21),
    unsqueeze("int64", np.arange(6, dtype=np.int64).reshape(2, 3), [1, -1]),
]

# Symbolic input dims with explicit axes.
from op_cases.shape import SymbolicOpCase  # noqa: E402

CASES += [
    SymbolicOpCase("squeeze_symbolic", "Squeeze", {"X": rand(1, 3, 1, 4)}, weights={"A": np.array([2], np.int64)},
                   opset=13, symbolic={"X": {1: "n"}}),
    SymbolicOpCase("unsqueeze_symbolic", "Unsqueeze", {"X": rand(3, 4)}, weights={"A": np.array([0, -1], np.int64)},
                   opset=13, symbolic={"X": {0: "n", 1: "m"}}),
]
