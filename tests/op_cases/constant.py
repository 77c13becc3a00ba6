"""ConstantOfShape (runtime shape, value dtypes), Range (runtime scalar bounds, int and float),
EyeLike (k, dtype; static and symbolic shapes)."""
from dataclasses import dataclass

import numpy as np
import onnx
import onnx.helper as oh
from onnx import numpy_helper

from harness import OpCase, rand
from op_cases.shape import SymbolicOpCase


@dataclass
class ScalarInputsCase(OpCase):
    """CoreML has no rank-0 inputs: 1-element graph inputs (``scalars``, default all) are reshaped
    to scalars first."""

    scalars: tuple = ()

    def model(self) -> onnx.ModelProto:
        model = super().model()
        graph = model.graph
        node = graph.node[0]
        prelude = []
        for j, name in enumerate(node.input):
            if name in (self.scalars or self.inputs):
                prelude.append(oh.make_node("Reshape", [name, "scalar_shape"], [f"{name}_scalar"],
                                            name=f"{name}_to_scalar"))
                node.input[j] = f"{name}_scalar"
        graph.initializer.append(numpy_helper.from_array(np.zeros(0, np.int64), "scalar_shape"))
        for n in reversed(prelude):
            graph.node.insert(0, n)
        del graph.value_info[:]
        return onnx.shape_inference.infer_shapes(model)


def constant_of_shape(id, shape, value=None, opset=9):
    attrs = {} if value is None else {"value": numpy_helper.from_array(np.array([value]), "value")}
    return OpCase(f"constantofshape_{id}", "ConstantOfShape", {"S": np.array(shape, np.int64)}, attrs, opset=opset)


def range_(id, start, limit, delta, dtype, runtime=("start", "limit", "delta")):
    values = dict(start=start, limit=limit, delta=delta)
    inputs = {k: np.array([v], dtype) for k, v in values.items() if k in runtime}
    weights = {k: np.array(v, dtype) for k, v in values.items() if k not in runtime}
    return ScalarInputsCase(f"range_{id}", "Range", inputs, weights=weights, opset=11,
                            input_order=["start", "limit", "delta"])


def eye_like(id, shape, symbolic=None, opset=9, **attrs):
    x = rand(*shape)
    if symbolic:
        return SymbolicOpCase(f"eyelike_{id}", "EyeLike", {"X": x}, attrs, opset=opset, symbolic={"X": symbolic})
    return OpCase(f"eyelike_{id}", "EyeLike", {"X": x}, attrs, opset=opset)


CASES = [
    eye_like("square", (4, 4)),
    eye_like("wide_k", (3, 5), k=2),
    eye_like("tall_negative_k", (5, 3), k=-1, opset=22),
    eye_like("dtype_int64", (3, 4), dtype=onnx.TensorProto.INT64, k=1),
    OpCase("eyelike_input_int32", "EyeLike", {"X": np.zeros((3, 2), np.int32)}),
]

# Runtime shapes/bounds or symbolic dims: the MIL output shape stays symbolic until the program runs.
CASES += [
    constant_of_shape("default_value", [2, 3]),
    constant_of_shape("float_value", [4], np.float32(2.5), opset=20),
    constant_of_shape("int64_value", [2, 1, 3], np.int64(-7)),
    constant_of_shape("bool_value", [3, 2], np.bool_(True), opset=21),
    range_("int", 2, 11, 3, np.int64),
    range_("int_negative_delta", 10, -3, -4, np.int32),
    range_("float", 0.5, 3.0, 0.75, np.float32),
    range_("float_constant_delta", 1.0, 0.0, -0.25, np.float32, runtime=("start", "limit")),
    eye_like("symbolic", (3, 5), symbolic={0: "rows"}, k=1),
    eye_like("symbolic_int64", (4, 3), symbolic={0: "r", 1: "c"}, dtype=onnx.TensorProto.INT64, k=-1),
]
