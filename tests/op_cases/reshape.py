"""Reshape (0, -1, allowzero, runtime target) and Flatten (every axis, negative axes)."""
import numpy as np

from harness import OpCase, rand


def reshape(id, x_shape, shape, opset=17, dynamic=False, **attrs):
    target = np.array(shape, dtype=np.int64)
    case = OpCase(f"reshape_{id}", "Reshape", {"X": rand(*x_shape)}, attrs, {"S": target}, opset=opset)
    if dynamic:
        case.inputs["S"] = case.weights.pop("S")
    return case


def flatten(id, x_shape, axis, opset=13):
    return OpCase(f"flatten_{id}", "Flatten", {"X": rand(*x_shape)}, {"axis": axis}, opset=opset)


CASES = [
    reshape("basic", (2, 3, 4), [6, 4]),
    reshape("minus_one", (2, 3, 4), [-1, 2], opset=11),
    reshape("zero_copies_dim", (2, 3, 4), [0, -1]),
    reshape("zero_rank_change", (2, 3, 4), [0, 3, 2, 2]),
    reshape("allowzero_no_zero", (2, 3, 4), [4, 6], opset=14, allowzero=1),
    reshape("to_1d", (1, 1), [1]),
    reshape("to_scalar", (1, 1), []),
    reshape("from_1d", (24,), [2, 3, 4], opset=5),
] + [
    flatten(f"axis{a}".replace("-", "m"), (2, 3, 4, 5), a, opset=13 if a >= 0 else 11)
    for a in (0, 1, 2, 3, 4, -1, -3)
] + [flatten("default_opset9", (2, 3, 4), 1, opset=9)]

# Runtime target shapes: the MIL output shape stays symbolic until the program runs.
CASES += [
    reshape("runtime_target", (2, 3, 4), [4, 3, 2], dynamic=True),
    reshape("runtime_target_zero", (2, 3, 4), [0, 12], dynamic=True),
    reshape("runtime_target_zero_minus_one", (2, 3, 4), [2, 0, -1], dynamic=True),
]

# Symbolic input dims: 0 copies a symbolic dim, -1 absorbs one; Flatten over symbolic heads/tails.
from op_cases.shape import SymbolicOpCase  # noqa: E402


def symbolic(case, dims):
    return SymbolicOpCase(case.id + "_symbolic", case.op_type, case.inputs, case.attrs, case.weights,
                          opset=case.opset, symbolic={"X": dims})


CASES += [
    symbolic(reshape("zero_copies_dim", (2, 3, 4), [0, -1]), {0: "n"}),
    symbolic(reshape("zero_rank_change", (2, 3, 4), [0, 3, 2, 2]), {0: "n"}),
    symbolic(reshape("zero_rank_grow", (2, 3, 4), [0, 0, 2, 2]), {0: "n", 1: "m"}),
    symbolic(reshape("zero_same_rank", (2, 3, 4), [0, 4, 3]), {0: "n"}),
    symbolic(reshape("zero_same_rank_minus_one", (2, 3, 4), [0, -1, 2]), {0: "n", 2: "w"}),
    symbolic(reshape("zero_rank_drop", (2, 3, 4), [0, 12]), {0: "n"}),
    symbolic(reshape("minus_one", (2, 3, 4), [-1, 4]), {0: "n"}),
    symbolic(flatten("axis2", (2, 3, 4, 5), 2), {0: "n"}),
    symbolic(flatten("axis1", (2, 3, 4, 5), 1), {3: "w"}),
    symbolic(flatten("axis2_both", (2, 3, 4, 5), 2), {0: "n", 3: "w"}),
]

# Refused with a reason (case, words the reason contains).
REFUSED = [
    (reshape("allowzero_zero", (2, 3, 4), [0, 24], opset=14, allowzero=1), "zero-size"),
    (reshape("runtime_allowzero", (2, 3, 4), [4, 3, 2], opset=14, dynamic=True, allowzero=1), "allowzero=1"),
]
