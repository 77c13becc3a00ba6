"""CumSum: axes (negative too), exclusive, reverse, both; int data."""
import numpy as np

from harness import OpCase, rand


def cumsum(id, x, axis, opset=14, **attrs):
    return OpCase(f"cumsum_{id}", "CumSum", {"X": x}, attrs, {"A": np.array(axis, np.int64)}, opset=opset)


CASES = [
    cumsum("axis0", rand(4, 3), 0, opset=11),
    cumsum("axis_negative", rand(2, 3, 5), -1),
    cumsum("exclusive", rand(2, 6), 1, exclusive=1),
    cumsum("reverse", rand(5, 2), 0, reverse=1),
    cumsum("exclusive_reverse", rand(3, 4, 2), 1, exclusive=1, reverse=1),
    cumsum("int64", np.arange(12, dtype=np.int64).reshape(3, 4), 1),
    cumsum("int32_axis_1d", np.arange(6, dtype=np.int32), 0, opset=11),
]

from op_cases.shape import SymbolicOpCase  # noqa: E402

CASES += [
    SymbolicOpCase("cumsum_symbolic", "CumSum", {"X": rand(3, 5)}, {"reverse": 1},
                   {"A": np.array(1, np.int64)}, opset=14, symbolic={"X": {0: "n", 1: "m"}}),
]
