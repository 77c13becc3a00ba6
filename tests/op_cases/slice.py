"""Slice: attributes (opset < 10), inputs with axes/steps (>= 10), negative indices and steps,
clamping past both ends, INT64 max/min ends, runtime starts/ends."""
import numpy as np

from harness import OpCase, rand

BIG = np.iinfo(np.int64).max
SMALL = np.iinfo(np.int64).min


def slice_(id, x_shape, starts, ends, axes=None, steps=None, opset=13, runtime=False):
    x = {"X": rand(*x_shape)}
    if opset < 10:
        attrs = {"starts": starts, "ends": ends}
        if axes is not None:
            attrs["axes"] = axes
        return OpCase(f"slice_{id}", "Slice", x, attrs, opset=opset)
    weights = {"S": np.array(starts, np.int64), "E": np.array(ends, np.int64)}
    order = ["X", "S", "E"]
    if axes is not None or steps is not None:
        weights["A"] = np.array(axes if axes is not None else range(len(starts)), np.int64)
        order.append("A")
    if steps is not None:
        weights["T"] = np.array(steps, np.int64)
        order.append("T")
    case = OpCase(f"slice_{id}", "Slice", x, weights=weights, input_order=order, opset=opset)
    if runtime:
        case.inputs.update(S=case.weights.pop("S"), E=case.weights.pop("E"))
    return case


CASES = [
    slice_("attr", (4, 5, 6), [1, 0], [3, 4], opset=9),
    slice_("attr_axes_negative_indices", (4, 5, 6), [-3], [-1], axes=[2], opset=9),
    slice_("basic", (4, 5, 6), [1], [3]),
    slice_("axes", (4, 5, 6), [1, 2], [4, 5], axes=[2, 0], opset=10),
    slice_("negative_axes_indices", (4, 5, 6), [-4], [-1], axes=[-1]),
    slice_("steps", (8, 9), [0, 1], [8, 9], axes=[0, 1], steps=[2, 3], opset=11),
    slice_("int_max_end", (4, 6), [2], [BIG], axes=[1]),
    slice_("clamp_past_end", (4, 6), [1, -100], [100, 3], axes=[0, 1]),
    slice_("reverse_full", (4, 6), [-1], [SMALL], axes=[1], steps=[-1]),
    slice_("reverse_int_max_start", (4, 6), [BIG], [SMALL], axes=[0], steps=[-1]),
    slice_("negative_step_2", (7, 3), [5], [0], axes=[0], steps=[-2]),
    slice_("negative_step_to_minus_end", (7, 3), [6], [-8], axes=[0], steps=[-3]),
    slice_("negative_step_start_below", (5, 3), [-10], [SMALL], axes=[0], steps=[-1]),
    slice_("negative_step_clamped_start", (5, 3), [20], [1], axes=[0], steps=[-2], opset=18),
    slice_("three_axes", (3, 4, 5, 6), [0, 1, -2], [2, -1, BIG], axes=[3, 1, 2], steps=[1, 2, 1], opset=21),
]

# Runtime starts/ends: the MIL output shape stays symbolic until the program runs.
CASES += [
    slice_("runtime_starts_ends", (4, 5, 6), [1, 0], [3, -1], axes=[0, 2], runtime=True),
    slice_("runtime_starts_ends_steps", (8, 5), [1], [7], axes=[0], steps=[2], runtime=True),
]

# Symbolic input dims: bounds as Python-style negatives and masks.
from op_cases.shape import SymbolicOpCase  # noqa: E402


def symbolic(case, dims):
    return SymbolicOpCase(case.id + "_symbolic", case.op_type, case.inputs, case.attrs, case.weights,
                          case.input_order, opset=case.opset, symbolic={"X": dims})


CASES += [
    symbolic(slice_("int_max_end", (4, 6), [2], [BIG], axes=[1]), {1: "n"}),
    symbolic(slice_("clamp_past_end", (4, 6), [1, -100], [100, 3], axes=[0, 1]), {0: "n", 1: "m"}),
    symbolic(slice_("reverse_full", (4, 6), [-1], [SMALL], axes=[1], steps=[-1]), {1: "n"}),
    symbolic(slice_("reverse_int_max_start", (4, 6), [BIG], [SMALL], axes=[0], steps=[-1]), {0: "n"}),
    symbolic(slice_("negative_step_2", (7, 3), [5], [0], axes=[0], steps=[-2]), {0: "n"}),
    symbolic(slice_("negative_axes_indices", (4, 5, 6), [-4], [-1], axes=[-1]), {2: "n"}),
    symbolic(slice_("negative_step_start_below", (5, 3), [-10], [SMALL], axes=[0], steps=[-1]), {0: "n"}),
    symbolic(slice_("negative_step_negative_start", (7, 3), [-2], [-100], axes=[0], steps=[-3]), {0: "n"}),
]

REFUSED = [
    (slice_("empty", (4, 6), [3], [1], axes=[0]), "empty"),
    (slice_("runtime_negative_step", (4, 6), [3], [0], axes=[0], steps=[-1], runtime=True), "negative step"),
]
