"""LayerNormalization (opset 17+): axis, epsilon, optional bias, Mean/InvStdDev outputs, stash_type."""
import coremltools as ct
import numpy as np

from harness import OpCase, rand


def layer_norm(id, shape, axis=-1, bias=True, dynamic=(), n_outputs=1, x_dtype=np.float32, opset=17,
               scale_shape=None, **attrs):
    norm_shape = scale_shape or shape[axis % len(shape):]
    weights = {"scale": rand(*norm_shape, seed=1)}
    if bias:
        weights["B"] = rand(*norm_shape, seed=2)
    inputs = {"X": rand(*shape, low=-2, high=3).astype(x_dtype)}
    for name in dynamic:
        inputs[name] = weights.pop(name)
    if x_dtype == np.float16:
        weights = {k: v.astype(np.float16) for k, v in weights.items()}
        inputs = {k: v.astype(np.float16) for k, v in inputs.items()}
    order = ["X", "scale"] + (["B"] if bias else [])
    return OpCase(f"layernorm_{id}", "LayerNormalization", inputs, dict(axis=axis, **attrs), weights,
                  input_order=order, n_outputs=n_outputs, opset=opset)


CASES = [
    layer_norm("last_axis", (2, 5, 8)),
    layer_norm("axis1", (2, 3, 4, 5), axis=1, epsilon=1e-3),
    layer_norm("negative_axis_no_bias", (3, 4, 6), axis=-2, bias=False),
    layer_norm("rank2", (4, 16), opset=21),
    layer_norm("broadcast_scale", (2, 3, 4), axis=1, scale_shape=(4,)),
    layer_norm("dynamic_scale_bias", (2, 5, 8), dynamic=("scale", "B")),
    layer_norm("mean_invstd_outputs", (2, 3, 6), axis=1, n_outputs=3),
    layer_norm("fp16_stash_fp32", (2, 4, 8), x_dtype=np.float16),
    layer_norm("fp16_stash_fp16", (2, 4, 8), x_dtype=np.float16, stash_type=10),
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
                          case.input_order, case.n_outputs, opset=case.opset, symbolic={"X": dims})


CASES += [
    symbolic(layer_norm("last_axis", (2, 5, 8)), {0: "n", 1: "t"}),
    symbolic(layer_norm("mean_invstd_outputs", (2, 3, 6), axis=-1, n_outputs=3), {1: "t"}),
]
