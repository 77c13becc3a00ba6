"""Gather (axes, negative and scalar indices, runtime indices, bool data), GatherElements,
GatherND (batch_dims), ScatterElements/Scatter and ScatterND with every reduction."""
from dataclasses import replace

import coremltools as ct
import numpy as np

from harness import OpCase, rand


def idx(*values):
    return np.array(values, dtype=np.int64)


def gather(id, x, indices, runtime=False, opset=13, op="Gather", **attrs):
    case = OpCase(f"{op.lower()}_{id}", op, {"X": x}, attrs, {"I": indices}, opset=opset)
    if runtime:
        case.inputs["I"] = case.weights.pop("I")
    return case


def scatter(id, op, data, indices, updates, opset=18, runtime=False, **attrs):
    case = OpCase(f"{op.lower()}_{id}", op, {"D": data}, attrs, {"I": indices, "U": updates}, opset=opset,
                  input_order=["D", "I", "U"])
    if runtime:
        case.inputs["I"] = case.weights.pop("I")
        case.inputs["U"] = case.weights.pop("U")
    return case


_ints = np.arange(24, dtype=np.int64).reshape(2, 3, 4)

CASES = [
    gather("axis0", rand(5, 3), idx(0, 4, 2)),
    gather("axis1_negative", rand(2, 5, 3), idx(-1, 0, -5), axis=1, opset=11),
    gather("scalar_index", rand(4, 6), np.array(-2, np.int64), axis=1),
    gather("2d_indices", rand(6, 2), idx(1, 2, 5, 0).reshape(2, 2)),
    gather("runtime_indices", rand(5, 3), idx(4, 0, 3, 3), runtime=True, axis=0),
    gather("runtime_negative", rand(3, 5), idx(-1, 2, -5), runtime=True, axis=-1),
    gather("int32_indices", rand(3, 5), np.array([1, -2], np.int32), runtime=True, axis=1),
    gather("int64_data", _ints, idx(2, 0), axis=2),
    gather("bool_data", np.array([[True, False], [False, False], [True, True]]), idx(2, 0), opset=21),
    gather("axis0", rand(3, 4), idx(0, 2, 1, 0, 2, 1, -1, 0, 1, 2, 1, 0).reshape(3, 4), op="GatherElements"),
    gather("axis1_runtime_negative", rand(3, 4), idx(-1, 0, 3, 1, -4, 2).reshape(3, 2), op="GatherElements",
           runtime=True, axis=1),
    gather("basic", rand(3, 4, 2), idx(0, 1, 2, 3, -1, 0).reshape(3, 2), op="GatherND"),
    gather("full_depth", rand(3, 4), idx(0, 1, 2, 3, 1, -1).reshape(3, 2), op="GatherND", runtime=True),
    gather("batch_dims", rand(2, 3, 4), idx(1, 2, 0, -1).reshape(2, 2, 1), op="GatherND", batch_dims=1, opset=12),
    gather("batch_dims2_runtime", rand(2, 3, 4, 5), idx(1, 2, 0, -1, 2, 2, 3, 0, -4, 1, -1, 4).reshape(2, 3, 1, 2),
           op="GatherND", runtime=True, batch_dims=2),
    scatter("none", "ScatterElements", rand(3, 4), idx(0, 2, 1, 1, 0, 2).reshape(2, 3), rand(2, 3, seed=1),
            axis=0, opset=11),
    scatter("negative_runtime", "ScatterElements", rand(3, 4), idx(-1, 0, 2, 1).reshape(2, 2),
            rand(2, 2, seed=1), axis=1, runtime=True, opset=13),
    scatter("same_shape", "ScatterElements", rand(2, 3), idx(2, 0, 1, 1, 0, 2).reshape(2, 3), rand(2, 3, seed=1),
            axis=1, opset=16),
    scatter("opset9", "Scatter", rand(4, 2), idx(3, 1, 0, 2).reshape(2, 2), rand(2, 2, seed=1), opset=9),
] + [
    scatter(f"{r}", "ScatterElements", rand(3, 4), idx(0, 0, 1, 1, 0, 2).reshape(2, 3), rand(2, 3, seed=1),
            axis=0, reduction=r)
    for r in ("add", "mul", "max", "min")
] + [
    scatter("none", "ScatterND", rand(4, 3), idx(2, 0, -1).reshape(3, 1), rand(3, 3, seed=1), opset=11),
    scatter("elements", "ScatterND", rand(3, 4), idx(0, 1, 2, 3, 1, -1).reshape(3, 2), rand(3, seed=1),
            runtime=True, opset=13),
] + [
    scatter(f"{r}", "ScatterND", rand(4, 3), idx(1, 1, 3).reshape(3, 1), rand(3, 3, seed=1), reduction=r)
    for r in ("add", "mul", "max", "min")
]

# Symbolic data dims: negative runtime indices wrapped by the runtime dim.
from op_cases.shape import SymbolicOpCase  # noqa: E402


def symbolic(case, dims):
    return SymbolicOpCase(case.id + "_symbolic", case.op_type, case.inputs, case.attrs, case.weights,
                          case.input_order, opset=case.opset, symbolic={next(iter(case.inputs)): dims})


CASES += [
    symbolic(gather("runtime_negative", rand(3, 5), idx(-1, 2, -5), runtime=True, axis=-1), {1: "n"}),
    symbolic(gather("axis1_runtime_negative", rand(3, 4), idx(-1, 0, 3, 1, -4, 2).reshape(3, 2),
                    op="GatherElements", runtime=True, axis=1), {0: "n", 1: "m"}),
    symbolic(gather("full_depth", rand(3, 4), idx(0, 1, 2, 3, 1, -1).reshape(3, 2), op="GatherND", runtime=True),
             {0: "n", 1: "m"}),
    symbolic(scatter("negative_runtime", "ScatterElements", rand(3, 4), idx(-1, 0, 2, 1).reshape(2, 2),
                     rand(2, 2, seed=1), axis=1, runtime=True, opset=13), {1: "n"}),
]

# From iOS17 MIL gather takes no negative indices: runtime ones are wrapped by the builder.
CASES += [replace(c, id=f"{c.id}_ios17", target=ct.target.iOS17) for c in CASES
          if c.id in ("gather_runtime_negative", "gather_int32_indices", "gather_runtime_negative_symbolic",
                      "gathernd_batch_dims2_runtime", "scatterelements_negative_runtime")]
