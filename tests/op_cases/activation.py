"""Activations across their attributes; PRelu slope forms; Clip attribute (< 11) and input forms."""
import coremltools as ct
import numpy as np

from harness import OpCase, rand
from op_cases.binary import ints


def case(id, op, inputs, opset=17, weights=None, input_order=None, **attrs):
    return OpCase(f"{op.lower()}_{id}", op, inputs, attrs, weights or {}, input_order=input_order, opset=opset)


X = rand(2, 3, 4, 5, low=-4.0, high=4.0)
# Values on the ThresholdedRelu / Shrink boundaries.
EDGES = np.array([-2.0, -1.5, -0.5, -0.25, 0.0, 0.25, 0.5, 1.0, 1.5, 2.0], dtype=np.float32)


def f32(v):
    return np.array(v, dtype=np.float32)


CASES = [
    case("default", "LeakyRelu", {"X": X}),
    case("alpha", "LeakyRelu", {"X": X}, opset=6, alpha=0.3),
    case("default", "Elu", {"X": X}),
    case("alpha", "Elu", {"X": X}, opset=6, alpha=0.5),
    case("default", "Selu", {"X": X}),
    case("attrs", "Selu", {"X": X}, opset=6, alpha=2.0, gamma=0.5),
    case("default", "Celu", {"X": X}, opset=12),
    case("alpha", "Celu", {"X": X}, alpha=2.5),
    case("default", "ThresholdedRelu", {"X": EDGES}, opset=10),
    case("alpha", "ThresholdedRelu", {"X": EDGES}, alpha=0.5),
    case("default", "HardSigmoid", {"X": X}),
    case("attrs", "HardSigmoid", {"X": X}, opset=6, alpha=0.3, beta=0.4),
    case("x", "HardSwish", {"X": X}, opset=14),
    case("none", "Gelu", {"X": X}, opset=20),
    case("tanh", "Gelu", {"X": X}, opset=20, approximate="tanh"),
    case("x", "Mish", {"X": X}, opset=18),
    case("per_channel", "PRelu", {"X": X}, weights={"S": rand(3, 1, 1, seed=1)}),
    case("scalar_slope", "PRelu", {"X": X}, weights={"S": f32([0.25])}, opset=9),
    case("last_axis_slope", "PRelu", {"X": X}, weights={"S": rand(5, seed=1)}, opset=16),
    case("rank3_per_channel", "PRelu", {"X": rand(2, 3, 6, low=-2, high=2)}, weights={"S": rand(3, 1, seed=1)}),
    case("dynamic_slope", "PRelu", {"X": X, "S": rand(4, 5, seed=2)}),
    case("int", "PRelu", {"X": ints(3, 4).astype(np.int32), "S": ints(4, seed=1).astype(np.int32)}, opset=16),
    case("attrs", "Clip", {"X": X}, opset=6, min=-1.0, max=2.0),
    case("attr_defaults", "Clip", {"X": X}, opset=6),
    case("attr_min_only", "Clip", {"X": X}, opset=6, min=0.5),
    case("inputs", "Clip", {"X": X}, weights={"lo": f32(-1.0), "hi": f32(1.5)}, opset=11),
    case("max_only", "Clip", {"X": X}, weights={"hi": f32(0.5)}, input_order=["X", "", "hi"], opset=13),
    case("min_only", "Clip", {"X": X}, weights={"lo": f32(-0.5)}, input_order=["X", "lo"]),
    case("none", "Clip", {"X": X}, opset=12),
    case("min_above_max", "Clip", {"X": X}, weights={"lo": f32(1.0), "hi": f32(-1.0)}),
    # CoreML inputs cannot be rank 0; ORT takes one-element bounds.
    case("dynamic_bounds", "Clip", {"X": X, "lo": f32([-0.5]), "hi": f32([0.7])}),
    case("int", "Clip", {"X": ints(3, 5)}, weights={"lo": np.array(-2, np.int64), "hi": np.array(4, np.int64)},
         opset=12),
    case("default", "Shrink", {"X": EDGES}, opset=9),
    case("attrs", "Shrink", {"X": EDGES}, lambd=1.0, bias=0.25),
]

# fp16 graph inputs stay fp16 from iOS16: alpha/beta constants are emitted in fp16.
CASES += [
    OpCase(f"{op.lower()}_fp16", op, {"X": X.astype(np.float16)}, attrs, opset=opset, target=ct.target.iOS16)
    for op, attrs, opset in (("LeakyRelu", {"alpha": 0.2}, 16), ("HardSwish", {}, 14),
                             ("Clip", {"min": -1.0, "max": 1.5}, 6), ("Shrink", {"bias": 0.5}, 9))
]

# Small ints (iOS17+) are clipped in int32.
CASES.append(case("int8", "Clip", {"X": ints(3, 5, dtype=np.int8)},
                  weights={"lo": np.array(-2, np.int8), "hi": np.array(4, np.int8)}, opset=13))
CASES[-1].target = ct.target.iOS17
