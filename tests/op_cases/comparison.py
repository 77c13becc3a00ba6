"""Comparisons on float, int and bool tensors with broadcasting (LessOrEqual/GreaterOrEqual from 12)."""
import numpy as np

from harness import OpCase, rand
from op_cases.binary import bools, ints


def case(id, op, inputs, opset=17):
    return OpCase(f"{op.lower()}_{id}", op, inputs, opset=opset)


def with_ties(*shape, seed=0):
    return np.round(rand(*shape, seed=seed) * 2).astype(np.float32)


CASES = [
    c
    for op in ("Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual")
    for c in (
        case("float_broadcast", op, {"A": with_ties(2, 3, 4), "B": with_ties(3, 1, seed=1)}),
        case("int", op, {"A": ints(3, 4, low=-2, high=3), "B": ints(4, seed=1, low=-2, high=3)}, opset=13),
        case("int32_opset12", op, {"A": ints(5, dtype=np.int32, low=-2, high=3),
                                   "B": ints(5, seed=1, dtype=np.int32, low=-2, high=3)}, opset=12),
    )
] + [
    case("bool", "Equal", {"A": bools(2, 5), "B": bools(5, seed=1)}, opset=11),
    case("float_opset7", "Less", {"A": rand(3, 4), "B": rand(3, 4, seed=1)}, opset=7),
    case("float_opset9", "Greater", {"A": rand(3, 4), "B": rand(4, seed=1)}, opset=9),
]

# Small ints (iOS17+) are compared in int32.
import coremltools as ct  # noqa: E402

CASES += [
    OpCase("less_int8", "Less", {"A": ints(3, 4, dtype=np.int8), "B": ints(4, seed=1, dtype=np.int8)},
           opset=13, target=ct.target.iOS17),
    OpCase("greaterorequal_uint8", "GreaterOrEqual", {"A": ints(3, 4, low=0, high=5, dtype=np.uint8),
                                                      "B": ints(4, seed=1, low=0, high=5, dtype=np.uint8)},
           opset=16, target=ct.target.iOS17),
]
