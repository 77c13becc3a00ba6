"""Where with three-way broadcasting over float, int and bool values."""
import numpy as np

from harness import OpCase, rand
from op_cases.binary import bools, ints

CASES = [
    OpCase("where_float_broadcast", "Where", {"C": bools(2, 1, 4), "X": rand(3, 4), "Y": rand(2, 3, 1, seed=1)}),
    OpCase("where_int_opset9", "Where", {"C": bools(3, 4), "X": ints(3, 4), "Y": ints(4, seed=1)}, opset=9),
    OpCase("where_int32_opset16", "Where", {"C": bools(5), "X": ints(5, dtype=np.int32),
                                           "Y": ints(1, seed=2, dtype=np.int32)}, opset=16),
    OpCase("where_scalar_const", "Where", {"C": bools(2, 3), "X": rand(2, 3)},
           weights={"Y": np.array(0.0, dtype=np.float32)}),
]

# Small-int values (iOS17+) are selected in int32.
import coremltools as ct  # noqa: E402

CASES.append(OpCase("where_int8", "Where", {"C": bools(3, 4), "X": ints(3, 4, dtype=np.int8),
                                            "Y": ints(4, seed=1, dtype=np.int8)}, opset=16, target=ct.target.iOS17))

# The condition alone sets the output shape (MIL select types its output from a and b only).
CASES += [
    OpCase("where_cond_widens_float", "Where",
           {"c": np.random.default_rng(3).random((2, 3, 4)) > 0.5, "x": rand(1, 4), "y": rand(3, 1, seed=2)}),
]
