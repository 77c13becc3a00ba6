"""Elementwise unary ops on inputs inside each op's domain; int forms where ONNX and MIL have them."""
import coremltools as ct
import numpy as np

from harness import OpCase, rand
from op_cases.binary import bools, ints

_DOMAIN = {  # (low, high) of valid inputs
    "Sqrt": (0.01, 4.0), "Log": (0.01, 4.0), "Asin": (-0.99, 0.99), "Acos": (-0.99, 0.99),
    "Atanh": (-0.95, 0.95), "Acosh": (1.0, 6.0), "Tan": (-1.2, 1.2), "Reciprocal": (0.2, 3.0),
}
_FLOAT_OPS = ("Sqrt", "Exp", "Log", "Sin", "Cos", "Tan", "Asin", "Acos", "Atan", "Sinh", "Cosh", "Asinh",
              "Acosh", "Atanh", "Tanh", "Sigmoid", "Relu", "Abs", "Neg", "Reciprocal", "Floor", "Ceil",
              "Sign", "Erf", "Softplus", "Softsign")
# Round is half-to-even in ONNX: ties on both sides of zero.
_TIES = np.array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 0.49, -0.51, 3.7, -3.2], dtype=np.float32)
_SPECIALS = np.array([np.nan, np.inf, -np.inf, 0.0, -1.5, 3.0], dtype=np.float32)


def case(id, op, x, opset=17, **attrs):
    return OpCase(f"{op.lower()}_{id}", op, {"X": x}, attrs, opset=opset)


CASES = [
    case("float", op, rand(2, 3, 5, low=_DOMAIN.get(op, (-3.0, 3.0))[0], high=_DOMAIN.get(op, (-3.0, 3.0))[1]))
    for op in _FLOAT_OPS
] + [
    case("int", op, ints(3, 5, dtype=np.int32 if op == "Relu" else np.int64), opset=14)
    for op in ("Relu", "Abs", "Neg", "Sign")
] + [
    case("int32", "Abs", ints(7, dtype=np.int32), opset=13),
    case("ties", "Round", _TIES, opset=11),
    case("fp16", "Sqrt", rand(4, 3, low=0.1, high=2.0, dtype=np.float16)),
    case("zero", "Log", np.array([0.0, 1.0, 2.5], dtype=np.float32)),
    case("opset13", "Relu", rand(4, 4), opset=13),
    case("opset11", "Exp", rand(4, 4), opset=11),
    case("bool", "Not", bools(3, 4), opset=11),
    case("specials", "IsNaN", _SPECIALS, opset=13),
    case("float", "IsNaN", rand(3, 4), opset=9),
    case("both", "IsInf", _SPECIALS, opset=10),
    case("positive", "IsInf", _SPECIALS, opset=20, detect_negative=0),
    case("negative", "IsInf", _SPECIALS, opset=20, detect_positive=0),
    case("neither", "IsInf", _SPECIALS.reshape(2, 3), opset=20, detect_positive=0, detect_negative=0),
    case("wide", "Asinh", rand(10, low=-50.0, high=50.0), opset=9),
]

# fp16 graph inputs stay fp16 from iOS16 (before, CoreML inputs are fp32 and the graph runs in fp32).
next(c for c in CASES if c.id == "sqrt_fp16").target = ct.target.iOS16
# log(0) = -inf: the fp16 test's error bound (relative to max |reference|) is undefined at infinities.
next(c for c in CASES if c.id == "log_zero").fp16 = False
