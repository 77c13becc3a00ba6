"""InstanceNormalization on 1-D/2-D/3-D inputs, constant and graph-computed scale/bias."""
from harness import OpCase, rand


def instance_norm(id, shape, opset=17, dynamic=(), **attrs):
    c = shape[1]
    weights = {"scale": rand(c, seed=1), "B": rand(c, seed=2)}
    inputs = {"X": rand(*shape, low=-2, high=3)}
    for name in dynamic:
        inputs[name] = weights.pop(name)
    return OpCase(f"instancenorm_{id}", "InstanceNormalization", inputs, attrs, weights,
                  input_order=["X", "scale", "B"], opset=opset)


CASES = [
    instance_norm("1d", (2, 3, 9)),
    instance_norm("2d", (2, 4, 5, 6), opset=11, epsilon=1e-2),
    instance_norm("3d", (1, 3, 3, 4, 5)),
    instance_norm("dynamic_scale", (1, 3, 6, 6), dynamic=("scale",)),
]

# Symbolic input dims.
from op_cases.shape import SymbolicOpCase  # noqa: E402


def symbolic(case, dims):
    return SymbolicOpCase(case.id + "_symbolic", case.op_type, case.inputs, case.attrs, case.weights,
                          case.input_order, opset=case.opset, symbolic={"X": dims})


CASES += [
    symbolic(instance_norm("1d", (2, 3, 9)), {0: "n", 2: "l"}),
    symbolic(instance_norm("3d", (1, 3, 3, 4, 5)), {2: "d", 3: "h"}),
]
CASES += [
    symbolic(instance_norm("3d_dynamic_scale", (2, 3, 2, 3, 4), dynamic=("scale", "B")), {0: "n", 2: "d"}),
    symbolic(instance_norm("3d_batch", (2, 3, 2, 3, 4)), {0: "n"}),
    instance_norm("1d_dynamic_bias", (2, 3, 9), dynamic=("B",)),
]
