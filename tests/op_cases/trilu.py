"""Trilu: upper/lower, k = 0, positive, negative (band_part and mask forms), batched, int data."""
import numpy as np

from harness import OpCase, rand


def trilu(id, x, k=None, **attrs):
    weights = {} if k is None else {"K": np.array(k, np.int64)}
    return OpCase(f"trilu_{id}", "Trilu", {"X": x}, attrs, weights, opset=14)


CASES = [
    trilu("upper_default", rand(4, 5)),
    trilu("upper_k_negative", rand(5, 4), -1),
    trilu("upper_k_positive", rand(4, 6), 2),
    trilu("lower", rand(4, 5), upper=0),
    trilu("lower_k_positive", rand(3, 4, 5), 1, upper=0),
    trilu("lower_k_negative", rand(2, 5, 5), -2, upper=0),
    trilu("upper_k_out_of_range", rand(3, 3), 5),
    trilu("int64", np.arange(12, dtype=np.int64).reshape(3, 4), 1, upper=0),
]

REFUSED = [
    (OpCase("trilu_runtime_k", "Trilu", {"X": rand(3, 4), "K": np.array(1, np.int64)}, opset=14), "constant"),
]

from op_cases.shape import SymbolicOpCase  # noqa: E402

CASES += [
    SymbolicOpCase("trilu_band_symbolic", "Trilu", {"X": rand(2, 4, 5)}, {"upper": 0},
                   {"K": np.array(1, np.int64)}, opset=14, symbolic={"X": {0: "n", 1: "h", 2: "w"}}),
    SymbolicOpCase("trilu_mask_symbolic_batch", "Trilu", {"X": rand(2, 4, 5)}, {},
                   {"K": np.array(2, np.int64)}, opset=14, symbolic={"X": {0: "n"}}),
]
