"""Shape (with start/end) and Size of inputs with symbolic dims (static ones fold to constants)."""
from dataclasses import dataclass

import onnx

from harness import OpCase, rand


@dataclass
class SymbolicOpCase(OpCase):
    """An OpCase whose graph inputs declare symbolic dims: {input: {axis: dim_param}}."""

    symbolic: dict = None

    def model(self) -> onnx.ModelProto:
        model = super().model()
        for vi in model.graph.input:
            for axis, param in (self.symbolic or {}).get(vi.name, {}).items():
                vi.type.tensor_type.shape.dim[axis].dim_param = param
        del model.graph.value_info[:]
        for o in model.graph.output:
            o.type.tensor_type.ClearField("shape")
        return onnx.shape_inference.infer_shapes(model)


def case(id, op, x_shape, symbolic, opset=19, **attrs):
    return SymbolicOpCase(f"{op.lower()}_{id}", op, {"X": rand(*x_shape)}, attrs, opset=opset,
                          symbolic={"X": symbolic})


CASES = [
    case("symbolic_batch", "Shape", (3, 4, 5), {0: "batch"}, opset=13),
    case("all_symbolic", "Shape", (2, 3), {0: "a", 1: "b"}),
    case("start", "Shape", (2, 3, 4, 5), {1: "n"}, opset=15, start=1),
    case("start_end_negative", "Shape", (2, 3, 4, 5), {0: "n"}, start=-3, end=-1),
    case("end_clamped", "Shape", (2, 3, 4), {2: "n"}, start=-10, end=10, opset=21),
    case("symbolic", "Size", (2, 3, 4), {1: "n"}),
    case("all_symbolic", "Size", (5, 2), {0: "a", 1: "b"}, opset=13),
]
