"""Concat: axes (negative too), several inputs, constant operands, int64 and single input."""
import numpy as np

from harness import OpCase, rand

CASES = [
    OpCase("concat_axis0", "Concat", {"A": rand(2, 3), "B": rand(4, 3, seed=1)}, {"axis": 0}, opset=11),
    OpCase("concat_axis_neg", "Concat", {"A": rand(2, 3, 4), "B": rand(2, 3, 1, seed=1), "C": rand(2, 3, 2, seed=2)},
           {"axis": -1}),
    OpCase("concat_with_constant", "Concat", {"A": rand(1, 2, 3)}, {"axis": 1}, {"W": rand(1, 5, 3, seed=3)}),
    OpCase("concat_int64", "Concat", {"A": np.arange(6, dtype=np.int64).reshape(2, 3)}, {"axis": 1},
           {"W": np.array([[7], [8]], dtype=np.int64)}, opset=13),
    OpCase("concat_single", "Concat", {"A": rand(2, 3)}, {"axis": 1}, opset=4),
]

from op_cases.shape import SymbolicOpCase  # noqa: E402

CASES += [
    SymbolicOpCase("concat_symbolic", "Concat", {"A": rand(2, 3), "B": rand(2, 4, seed=1)}, {"axis": 1},
                   symbolic={"A": {0: "n", 1: "a"}, "B": {0: "n"}}),
]
