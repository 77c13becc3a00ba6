"""Transpose: default (reversed) perm, explicit perms, ranks 2..5, int data."""
import numpy as np

from harness import OpCase, rand

CASES = [
    OpCase("transpose_default_perm", "Transpose", {"X": rand(2, 3, 4)}),
    OpCase("transpose_2d", "Transpose", {"X": rand(3, 5)}, {"perm": [1, 0]}),
    OpCase("transpose_4d", "Transpose", {"X": rand(1, 2, 3, 4)}, {"perm": [0, 2, 3, 1]}),
    OpCase("transpose_5d", "Transpose", {"X": rand(2, 1, 3, 4, 2)}, {"perm": [4, 0, 3, 1, 2]}, opset=13),
    OpCase("transpose_int64", "Transpose", {"X": np.arange(24, dtype=np.int64).reshape(2, 3, 4)},
           {"perm": [2, 0, 1]}, opset=21),
]

from op_cases.shape import SymbolicOpCase  # noqa: E402

CASES += [
    SymbolicOpCase("transpose_symbolic", "Transpose", {"X": rand(1, 2, 3, 4)}, {"perm": [0, 3, 1, 2]},
                   symbolic={"X": {0: "n", 3: "w"}}),
]
