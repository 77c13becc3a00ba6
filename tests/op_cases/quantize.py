"""QuantizeLinear / DequantizeLinear: per-tensor, per-axis, blocked (opset 21), uint8/int8/int16,
constant weights (constexpr_affine_dequantize on iOS16+), graph-computed scales, ties rounding."""
import coremltools as ct
import numpy as np

from harness import OpCase, rand


def quantize(id, x, scale, zero=None, opset=13, dynamic_scale=False, **attrs):
    params = {"S": scale, **({"Z": zero} if zero is not None else {})}
    inputs = {"X": x, **({"S": params.pop("S")} if dynamic_scale else {})}
    order = ["X", "S"] + (["Z"] if zero is not None else [])
    return OpCase(f"quantizelinear_{id}", "QuantizeLinear", inputs, attrs, params, input_order=order, opset=opset)


def dequantize(id, x, scale, zero=None, opset=13, const_x=False, dynamic_scale=False, target=None, **attrs):
    params = {"S": scale, **({"Z": zero} if zero is not None else {})}
    inputs = {"X": x, **({"S": params.pop("S")} if dynamic_scale else {})}
    if const_x:
        params["X"] = inputs.pop("X")
        inputs["dummy"] = rand(1)
    order = ["X", "S"] + (["Z"] if zero is not None else [])
    case = OpCase(f"dequantizelinear_{id}", "DequantizeLinear", inputs, attrs, params, input_order=order,
                  opset=opset, target=target)
    return case


_ties = np.array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 3.49, 300.0, -300.0], np.float32)
_u8 = np.random.default_rng(0).integers(0, 256, size=(2, 3, 4)).astype(np.uint8)
_i8 = np.random.default_rng(1).integers(-128, 128, size=(3, 4)).astype(np.int8)
_i16 = np.random.default_rng(2).integers(-30000, 30000, size=(6,)).astype(np.int16)

CASES = [
    quantize("uint8_ties_saturation", _ties, np.array(1.0, np.float32), np.array(128, np.uint8), opset=10),
    quantize("int8_per_tensor", rand(2, 3, 4, low=-3, high=3), np.array(0.02, np.float32), np.array(-3, np.int8)),
    quantize("no_zero_point_uint8", rand(5, low=-1, high=3), np.array(0.01, np.float32)),
    quantize("per_axis", rand(1, 3, 3, 2, low=-5, high=5), np.array([0.05, 0.1, 0.2], np.float32),
             np.array([0, 10, -10], np.int8)),
    quantize("per_axis_0", rand(3, 4, low=-5, high=5), np.array([0.05, 0.1, 0.2], np.float32),
             np.array([1, 2, 3], np.uint8), axis=0),
    quantize("graph_scale", rand(2, 6, low=-3, high=3), np.array(0.03, np.float32), np.array(4, np.int8),
             dynamic_scale=True),
    quantize("int16", rand(6, low=-3, high=3), np.array(0.0004, np.float32), np.array(7, np.int16), opset=21),
    quantize("blocked", rand(3, 4, low=-3, high=3), rand(3, 2, low=0.01, high=0.05), np.ones((3, 2), np.int8),
             opset=21, axis=1, block_size=2),
    quantize("blocked_graph_scale", rand(3, 6, low=-3, high=3), rand(3, 2, low=0.01, high=0.05),
             np.full((3, 2), 3, np.uint8), opset=21, dynamic_scale=True, axis=1, block_size=3),
    dequantize("uint8", _u8, np.array(0.1, np.float32), np.array(120, np.uint8), opset=10),
    dequantize("int8_no_zero_point", _i8, np.array(0.5, np.float32)),
    dequantize("per_axis", _u8, np.array([0.1, 0.2, 0.3], np.float32), np.array([0, 100, 255], np.uint8)),
    dequantize("graph_scale", _i8, np.array(0.25, np.float32), np.array(-5, np.int8), dynamic_scale=True),
    dequantize("int16", _i16, np.array(0.001, np.float32), np.array(-40, np.int16), opset=21),
    dequantize("blocked", _i8, rand(3, 2, low=0.1, high=0.5), np.array([[1, 2], [3, 4], [5, 6]], np.int8),
               opset=21, axis=1, block_size=2),
    dequantize("const_weight_per_axis", _i8, np.array([0.1, 0.2, 0.3], np.float32), np.array([1, -2, 3], np.int8),
               const_x=True, axis=0, target=ct.target.iOS16),
    dequantize("const_weight_uint8", _u8, np.array(0.02, np.float32), np.array(128, np.uint8),
               const_x=True, target=ct.target.iOS16),
]

REFUSED = [
    (quantize("per_axis_2d_scale_refused", rand(3, 4), np.full((3, 4), 0.1, np.float32), opset=21),
     "per-tensor or 1-D per-axis"),
]
