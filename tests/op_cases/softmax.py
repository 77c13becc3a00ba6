"""Softmax/LogSoftmax/Hardmax: opset >= 13 single axis, opset < 13 coerce-to-2-D at axis."""
import numpy as np

from harness import OpCase, rand

X = rand(2, 3, 4, 5, low=-3.0, high=3.0)


def case(id, op, x, opset, **attrs):
    return OpCase(f"{op.lower()}_{id}", op, {"X": x}, attrs, opset=opset)


CASES = [
    c
    for op in ("Softmax", "LogSoftmax", "Hardmax")
    for c in (
        case("default_opset13", op, X, 13),
        case("axis1_opset13", op, X, 13, axis=1),
        case("axis_neg3_opset18", op, X, 18, axis=-3),
        case("default_opset11", op, X, 11),
        case("axis0_opset11", op, X, 11, axis=0),
        case("axis2_opset11", op, X, 11, axis=2),
        case("last_axis_opset9", op, X, 9, axis=3),
        case("axis_neg2_opset12", op, X, 12, axis=-2),
        case("2d_opset11", op, rand(4, 7), 11),
    )
] + [
    case("large_logits_opset13", "LogSoftmax", rand(3, 6, low=-80.0, high=80.0), 13),
    case("ties_opset13", "Hardmax", np.array([[1.0, 3.0, 3.0, 0.0], [2.0, 2.0, 2.0, 2.0]], np.float32), 13),
]

# Symbolic dims: the opset < 13 reshape targets and Hardmax's one-hot size come from the runtime shape.
from op_cases.shape import SymbolicOpCase  # noqa: E402

CASES += [
    SymbolicOpCase(f"{op.lower()}_symbolic_{id}", op, {"X": X}, {"axis": axis}, opset=opset, symbolic={"X": dims})
    for op in ("Softmax", "LogSoftmax", "Hardmax")
    for id, axis, opset, dims in (("leading_opset11", 2, 11, {0: "batch", 1: "n"}),
                                  ("trailing_opset11", 1, 11, {3: "t"}),
                                  ("axis_opset13", 2, 13, {2: "n"}))
]
