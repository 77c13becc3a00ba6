"""Elementwise arithmetic and logic: broadcasting, int/float, attribute and opset variants."""
import coremltools as ct
import numpy as np

from harness import OpCase, rand


def ints(*shape, seed=0, low=-9, high=10, dtype=np.int64):
    return np.random.default_rng(seed).integers(low, high, size=shape).astype(dtype)


def nonzero_ints(*shape, seed=1, dtype=np.int64):
    v = ints(*shape, seed=seed, low=-7, high=8, dtype=dtype)
    return np.where(v == 0, 3, v).astype(dtype)


def bools(*shape, seed=0):
    return np.random.default_rng(seed).random(shape) > 0.5


def case(id, op, inputs, opset=17, weights=None, **attrs):
    return OpCase(f"{op.lower()}_{id}", op, inputs, attrs, weights or {}, opset=opset)


CASES = [
    case(f"{op.lower()}_float_broadcast", op, {"A": rand(2, 3, 4), "B": rand(3, 1, seed=1)})
    for op in ("Add", "Sub", "Mul")
] + [
    case(f"{op.lower()}_int", op, {"A": ints(2, 5), "B": ints(5, seed=1)}, opset=13)
    for op in ("Add", "Sub", "Mul")
] + [
    case("add_int32_opset7", "Add", {"A": ints(3, 4, dtype=np.int32), "B": ints(1, 4, dtype=np.int32)}, opset=7),
    case("add_const", "Add", {"A": rand(2, 4)}, weights={"B": rand(4, seed=3)}),
    case("float", "Div", {"A": rand(2, 3, 4), "B": rand(4, seed=1, low=0.5, high=2.0)}),
    case("int_truncates", "Div", {"A": ints(3, 6), "B": nonzero_ints(3, 6)}, opset=14),
    case("int32_broadcast", "Div", {"A": ints(2, 6, dtype=np.int32), "B": nonzero_ints(6, dtype=np.int32)}),
    case("int_python_sign", "Mod", {"A": ints(3, 6), "B": nonzero_ints(3, 6)}, opset=10),
    case("int_fmod", "Mod", {"A": ints(3, 6), "B": nonzero_ints(6)}, fmod=1),
    case("float_fmod", "Mod", {"A": rand(3, 6, low=-5, high=5), "B": rand(3, 6, seed=1, low=0.5, high=2.0)
                               * np.where(bools(3, 6, seed=2), 1, -1).astype(np.float32)}, opset=13, fmod=1),
    case("float_floor_opset28", "Mod", {"A": rand(3, 6, low=-5, high=5), "B": rand(3, 6, seed=1, low=0.5, high=2.0)
                                          * np.where(bools(3, 6, seed=2), 1, -1).astype(np.float32)}, opset=28),
    case("float", "Pow", {"A": rand(2, 5, low=0.1, high=3.0), "B": rand(2, 5, seed=1, low=-2, high=2)}),
    case("float_int_exponent", "Pow", {"A": rand(2, 5, low=-3.0, high=3.0), "B": ints(5, low=0, high=4)},
         opset=15),
    case("int_int", "Pow", {"A": ints(2, 5, low=-4, high=5), "B": ints(2, 5, seed=1, low=0, high=4)}),
    case("int_float_exponent", "Pow", {"A": ints(2, 5, low=1, high=6),
                                       "B": rand(2, 5, seed=1, low=0.0, high=2.0)}, opset=12),
    case("scalar_exponent_opset7", "Pow", {"A": rand(3, 4, low=0.1, high=2.0)},
         weights={"B": np.array(2.0, dtype=np.float32)}, opset=7),
    case("three_broadcast", "Max", {"A": rand(2, 3, 4), "B": rand(3, 1, seed=1), "C": rand(4, seed=2)}),
    case("int", "Max", {"A": ints(2, 3), "B": ints(2, 3, seed=1)}, opset=13),
    case("one_input", "Max", {"A": rand(2, 3)}, opset=8),
    case("three_broadcast", "Min", {"A": rand(2, 3, 4), "B": rand(3, 1, seed=1), "C": rand(4, seed=2)}),
    case("two", "Min", {"A": rand(5), "B": rand(5, seed=1)}, opset=12),
    case("three", "Sum", {"A": rand(2, 3), "B": rand(2, 3, seed=1), "C": rand(3, seed=2)}),
    case("one_input", "Sum", {"A": rand(2, 3)}, opset=8),
    case("three", "Mean", {"A": rand(2, 3), "B": rand(2, 3, seed=1), "C": rand(2, 1, seed=2)}),
    case("two", "Mean", {"A": rand(4), "B": rand(4, seed=1)}, opset=8),
] + [
    case("broadcast", op, {"A": bools(2, 3, 4), "B": bools(4, seed=1)}, opset=opset)
    for op, opset in (("And", 7), ("Or", 17), ("Xor", 11))
]

# fp16 graph inputs stay fp16 from iOS16 (before, CoreML inputs are fp32): constants must match.
CASES += [
    OpCase("add_fp16", "Add", {"A": rand(2, 4, dtype=np.float16), "B": rand(2, 4, seed=1, dtype=np.float16)},
           target=ct.target.iOS16),
    OpCase("mean_fp16", "Mean", {"A": rand(2, 4, dtype=np.float16), "B": rand(4, seed=1, dtype=np.float16)},
           target=ct.target.iOS16),
    OpCase("div_fp16", "Div", {"A": rand(2, 4, dtype=np.float16)},
           weights={"B": np.array(3.0, dtype=np.float16)}, target=ct.target.iOS16),
]

# int8/uint8/int16/uint16 are computed in int32 between casts (iOS17+), without overflow here.
CASES += [
    OpCase("add_uint8", "Add", {"A": ints(3, 4, low=0, high=100, dtype=np.uint8),
                                "B": ints(4, seed=1, low=0, high=100, dtype=np.uint8)}, opset=14, target=ct.target.iOS17),
    OpCase("div_int8_truncates", "Div", {"A": ints(3, 4, dtype=np.int8), "B": nonzero_ints(3, 4, dtype=np.int8)},
           opset=14, target=ct.target.iOS17),
    OpCase("mod_int16", "Mod", {"A": ints(3, 4, dtype=np.int16), "B": nonzero_ints(4, dtype=np.int16)},
           opset=13, target=ct.target.iOS17),
    OpCase("max_uint8", "Max", {"A": ints(2, 3, low=0, high=9, dtype=np.uint8),
                                "B": ints(3, seed=1, low=0, high=9, dtype=np.uint8)}, opset=13, target=ct.target.iOS18),
]
