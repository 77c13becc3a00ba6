"""Split: equal parts, ``split`` attribute (< 13), sizes input (>= 13), ``num_outputs`` with an
uneven last chunk (>= 18), negative axis, a single output."""
import numpy as np

from harness import OpCase, rand


def split(id, x_shape, n, opset=13, sizes=None, as_attr=False, **attrs):
    weights, order = {}, None
    if sizes is not None and as_attr:
        attrs["split"] = sizes
    elif sizes is not None:
        weights["S"] = np.array(sizes, np.int64)
    return OpCase(f"split_{id}", "Split", {"X": rand(*x_shape)}, attrs, weights, n_outputs=n, opset=opset)


CASES = [
    split("equal", (6, 4), 3),
    split("equal_opset11_axis", (2, 6), 2, opset=11, axis=1),
    split("attr_sizes", (2, 7, 3), 3, opset=11, sizes=[1, 4, 2], as_attr=True, axis=1),
    split("input_sizes", (2, 7, 3), 2, sizes=[5, 2], axis=-2),
    split("num_outputs_uneven", (2, 7), 3, opset=18, axis=1, num_outputs=3),
    split("num_outputs_even", (8, 2), 4, opset=18, num_outputs=4),
    split("num_outputs_uneven_short", (5, 3), 3, opset=18, num_outputs=3),
    split("single_output", (4, 3), 1, opset=13),
]

# A symbolic split dim: equal parts via MIL num_splits; sizes on a symbolic dim.
from op_cases.shape import SymbolicOpCase  # noqa: E402

CASES += [
    SymbolicOpCase("split_equal_symbolic", "Split", {"X": rand(2, 6)}, {"axis": 1}, n_outputs=2, opset=13,
                   symbolic={"X": {1: "n"}}),
    SymbolicOpCase("split_sizes_symbolic", "Split", {"X": rand(7, 3)}, weights={"S": np.array([3, 4], np.int64)},
                   n_outputs=2, opset=13, symbolic={"X": {0: "n", 1: "m"}}),
]
