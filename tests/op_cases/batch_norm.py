"""BatchNormalization (inference) across ranks 2-5, opsets 9/14/15, constant and graph-computed stats."""
import coremltools as ct
import numpy as np

from harness import OpCase, rand


def stats(c, seed=1):
    return {"scale": rand(c, seed=seed), "B": rand(c, seed=seed + 1),
            "mean": rand(c, seed=seed + 2), "var": rand(c, seed=seed + 3, low=0.1, high=2.0)}


def batch_norm(id, shape, opset=15, dynamic=(), x_dtype=np.float32, **attrs):
    weights = stats(shape[1])
    inputs = {"X": rand(*shape).astype(x_dtype)}
    for name in dynamic:
        inputs[name] = weights.pop(name)
    return OpCase(f"batchnorm_{id}", "BatchNormalization", inputs, attrs, weights,
                  input_order=["X", "scale", "B", "mean", "var"], opset=opset)


CASES = [
    batch_norm("2d_opset9", (2, 3, 5, 4), opset=9),
    batch_norm("1d_opset14", (2, 4, 7), opset=14, epsilon=1e-3),
    batch_norm("3d", (1, 3, 2, 3, 4)),
    batch_norm("rank2", (5, 6)),
    batch_norm("dynamic_stats", (2, 3, 4, 4), dynamic=("mean", "var")),
    batch_norm("dynamic_all_rank2", (4, 3), dynamic=("scale", "B", "mean", "var"), opset=13),
    batch_norm("fp16_input_fp32_stats", (1, 3, 4, 4), x_dtype=np.float16),
]

# fp16 model inputs are fp16 in Core ML from iOS16 (earlier targets take them as fp32), so the
# fp16 cases target iOS16 to exercise fp16 arithmetic.
for _case in CASES:
    if any(v.dtype == np.float16 for v in _case.inputs.values()):
        _case.target = ct.target.iOS16

# Symbolic input dims.
from op_cases.shape import SymbolicOpCase  # noqa: E402


def symbolic(case, dims):
    return SymbolicOpCase(case.id + "_symbolic", case.op_type, case.inputs, case.attrs, case.weights,
                          case.input_order, opset=case.opset, symbolic={"X": dims})


CASES += [
    symbolic(batch_norm("2d", (2, 3, 5, 4)), {0: "n", 2: "h", 3: "w"}),
    symbolic(batch_norm("rank2_dynamic_stats", (4, 3), dynamic=("mean", "var")), {0: "n"}),
]

REFUSED = [
    (OpCase("batchnorm_rank6", "BatchNormalization", {"X": rand(1, 2, 2, 2, 2, 2)}, {}, stats(2),
            input_order=["X", "scale", "B", "mean", "var"], opset=15), "rank <= 5"),
]
