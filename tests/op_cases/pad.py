"""Pad: attribute form (< 11), pads/constant_value inputs, axes input (>= 18), every mode
(wrap from 19), leading-axis reflect/edge, cropping pads, runtime pads."""
import numpy as np

from harness import OpCase, rand


def pad(id, x_shape, pads, mode="constant", value=None, axes=None, opset=13, runtime=False):
    x = {"X": rand(*x_shape)}
    if opset < 11:
        attrs = {"pads": pads, "mode": mode}
        if value is not None:
            attrs["value"] = value
        return OpCase(f"pad_{id}", "Pad", x, attrs, opset=opset)
    weights = {"P": np.array(pads, np.int64)}
    order = ["X", "P"]
    if value is not None or axes is not None:
        if value is not None:
            weights["V"] = np.array(value, np.float32)
        order.append("V" if value is not None else "")
    if axes is not None:
        weights["A"] = np.array(axes, np.int64)
        order.append("A")
    case = OpCase(f"pad_{id}", "Pad", x, {"mode": mode}, weights, input_order=order, opset=opset)
    if runtime:
        case.inputs["P"] = case.weights.pop("P")
    return case


CASES = [
    pad("attr_constant", (1, 2, 3, 4), [0, 0, 1, 2, 0, 0, 2, 1], value=1.5, opset=2),
    pad("attr_reflect", (1, 2, 4, 5), [0, 0, 1, 2, 0, 0, 2, 3], mode="reflect", opset=10),
    pad("constant_default_value", (2, 3, 4), [0, 1, 2, 0, 1, 0], opset=11),
    pad("constant_value", (2, 3, 4), [1, 0, 0, 2, 0, 3], value=-2.0),
    pad("constant_leading_axes", (2, 3, 4, 5), [1, 2, 0, 0, 1, 0, 0, 0]),
    pad("reflect", (1, 3, 5, 6), [0, 0, 2, 1, 0, 0, 1, 4], mode="reflect"),
    pad("edge", (1, 3, 5, 6), [0, 0, 2, 6, 0, 0, 5, 1], mode="edge"),
    pad("reflect_1d", (2, 3, 7), [0, 0, 3, 0, 0, 2], mode="reflect"),
    pad("reflect_leading_axis", (2, 4, 5, 6), [0, 2, 1, 1, 0, 1, 3, 0], mode="reflect"),
    pad("edge_leading_axes", (3, 4, 5), [2, 1, 0, 1, 3, 1], mode="edge", opset=18),
    pad("wrap", (2, 4, 5), [0, 1, 2, 0, 3, 5], mode="wrap", opset=19),
    pad("axes", (2, 3, 4, 5), [1, 2, 3, 0], axes=[1, -1], opset=18),
    pad("axes_reflect", (2, 3, 4, 5), [1, 2, 2, 0], mode="reflect", axes=[3, 2], opset=18),
    pad("axes_with_value", (2, 3, 4), [2, 1], value=3.0, axes=[0], opset=21),
    pad("crop", (3, 6, 5), [0, -1, 2, -1, -2, 0]),
    pad("crop_attr", (3, 6, 5), [-1, 0, 1, 0, 0, -3], opset=9),
]

# Runtime pads: the MIL output shape stays symbolic until the program runs.
CASES += [
    pad("runtime_pads", (2, 3, 4), [0, 1, 2, 1, 0, 3], value=0.5, runtime=True),
    # edge/reflect: each axis gathered at indices computed from the runtime pads
    pad("runtime_pads_reflect", (2, 3, 4), [0, 1, 2, 1, 0, 3], mode="reflect", runtime=True),
    pad("runtime_pads_edge", (2, 3, 4), [1, 0, 5, 0, 2, 1], mode="edge", runtime=True),
]

# Symbolic input dims: constant padding and cropping.
from op_cases.shape import SymbolicOpCase  # noqa: E402


def symbolic(case, dims):
    return SymbolicOpCase(case.id + "_symbolic", case.op_type, case.inputs, case.attrs, case.weights,
                          case.input_order, opset=case.opset, symbolic={"X": dims})


CASES += [
    symbolic(pad("constant_value", (2, 3, 4), [1, 0, 0, 2, 0, 3], value=-2.0), {0: "n", 2: "w"}),
    symbolic(pad("crop", (3, 6, 5), [0, -1, 2, -1, -2, 0]), {0: "n", 1: "m"}),
    symbolic(pad("reflect_1d", (2, 3, 7), [0, 0, 3, 0, 0, 2], mode="reflect"), {0: "n"}),
    symbolic(pad("edge_symbolic_padded_axis", (2, 3, 7), [0, 1, 0, 0, 1, 1], mode="edge"), {1: "c", 2: "w"}),
    symbolic(pad("wrap", (2, 4, 5), [0, 1, 1, 0, 1, 1], mode="wrap", opset=19), {1: "h", 2: "w"}),
]

REFUSED = [
    (pad("reflect_too_wide", (1, 2, 3, 4), [0, 0, 3, 0, 0, 0, 0, 0], mode="reflect"), "at most"),
    (pad("runtime_pads_wrap", (2, 3, 4), [0, 1, 2, 1, 0, 3], mode="wrap", runtime=True, opset=19), "runtime pads"),
    (pad("wrap_crop", (2, 4, 5), [0, -1, 2, 0, 3, 5], mode="wrap", opset=19), "negative"),
    # a symbolic axis without bounds runs from length 1 (bounded ones: tests/test_dynamic_shapes.py)
    (symbolic(pad("reflect_symbolic_padded_axis", (2, 3, 7), [0, 0, 3, 0, 0, 2], mode="reflect"), {2: "w"}),
     "can be as short as 1"),
]

# int data goes through fp32 (MIL pad takes floats only)
_ints = np.arange(-6, 6, dtype=np.int64).reshape(3, 4)
CASES += [
    OpCase(f"pad_int64_{mode}", "Pad", {"x": _ints}, {"mode": mode},
           {"pads": np.array([1, 2, 0, 1], np.int64)}, opset=19, fp16=False)
    for mode in ("constant", "edge", "reflect", "wrap")
]
