"""NonZero: float, int and bool inputs of ranks 1-3."""
import numpy as np

from harness import OpCase

_rng = np.random.default_rng(0)

CASES = [
    OpCase("nonzero_float_2d", "NonZero", {"X": (_rng.uniform(size=(3, 4)) > 0.5).astype(np.float32) * 2.5}, opset=13),
    OpCase("nonzero_bool_1d", "NonZero", {"X": np.array([True, False, True, True])}, opset=9),
    OpCase("nonzero_int64_3d", "NonZero", {"X": _rng.integers(-1, 2, size=(2, 3, 4)).astype(np.int64)}, opset=13),
]
