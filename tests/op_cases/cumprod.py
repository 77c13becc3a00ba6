"""CumProd (opset 26): axes (negative too), exclusive, reverse, both; zeros and negatives; int data."""
import coremltools as ct
import numpy as np

from harness import OpCase, rand


def cumprod(id, x, axis, **attrs):
    return OpCase(f"cumprod_{id}", "CumProd", {"X": x}, attrs, {"A": np.array(axis, np.int64)}, opset=26)


_signed = rand(4, 5, low=-2, high=2)
_signed[1, 2] = 0.0

CASES = [
    cumprod("axis0", rand(4, 3, low=0.5, high=1.5), 0),
    cumprod("negative_axis_zero_and_negatives", _signed, -1),
    cumprod("exclusive", rand(2, 6), 1, exclusive=1),
    cumprod("reverse", rand(5, 2), 0, reverse=1),
    cumprod("exclusive_reverse", rand(3, 4, 2), 1, exclusive=1, reverse=1),
    cumprod("length1_exclusive", rand(3, 1), 1, exclusive=1),
    cumprod("int64", np.arange(1, 13, dtype=np.int64).reshape(3, 4) - 4, 1),
    cumprod("long_axis_reverse", rand(2, 300, low=0.9, high=1.1), 1, reverse=1),
]

from op_cases.shape import SymbolicOpCase  # noqa: E402

CASES += [
    SymbolicOpCase("cumprod_symbolic_exclusive", "CumProd", {"X": rand(3, 5)}, {"exclusive": 1},
                   {"A": np.array(1, np.int64)}, opset=26, symbolic={"X": {0: "n"}}, target=ct.target.iOS16),
    SymbolicOpCase("cumprod_symbolic_exclusive_ios15", "CumProd", {"X": rand(3, 5)}, {"exclusive": 1},
                   {"A": np.array(1, np.int64)}, opset=26, symbolic={"X": {0: "n"}}),
]

_graph_axis = OpCase("cumprod_graph_axis_refused", "CumProd", {"X": rand(2, 3), "A": np.array(1, np.int64)},
                     opset=26)
REFUSED = [
    (_graph_axis, "axis must be a constant"),
]
