"""Reductions: axes attribute (< 18; ReduceSum < 13) and input forms, keepdims, empty axes with and
without noop_with_empty_axes, int inputs; ArgMax/ArgMin with keepdims and select_last_index."""
import numpy as np

from harness import OpCase, rand
from op_cases.binary import bools, ints

_OPS = ("ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
        "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare")
X = rand(2, 3, 4, low=0.2, high=1.5)  # positive: ReduceLogSum's domain
XN = rand(2, 3, 4, seed=3, low=-2.0, high=2.0)


def axes_in(op):
    return 13 if op == "ReduceSum" else 18


def case(id, op, x, opset, weights=None, input_order=None, **attrs):
    return OpCase(f"{op.lower()}_{id}", op, {"X": x}, attrs, weights or {}, input_order=input_order, opset=opset)


def with_axes(id, op, x, axes, **attrs):
    """Axes as attribute at the last opset before the input form, and as input at the first after."""
    return [
        case(f"{id}_attr", op, x, axes_in(op) - 1, axes=axes, **attrs),
        case(f"{id}_input", op, x, axes_in(op), weights={"axes": np.array(axes, np.int64)}, **attrs),
    ]


CASES = [
    c
    for op in _OPS
    for c in (
        *with_axes("axis1", op, X, [1]),
        *with_axes("axes_neg_nokeep", op, X, [0, -1], keepdims=0),
        case("all_attr_default", op, X, 11),
        case("all_no_axes_nokeep", op, X, axes_in(op), keepdims=0),
        case("noop_empty_axes", op, XN if op != "ReduceLogSum" else X, axes_in(op), noop_with_empty_axes=1),
    )
] + [
    case("negative_input_axis", "ReduceL1", XN, 18, weights={"axes": np.array([-2], np.int64)}),
    case("empty_axes_input_reduces_all", "ReduceSum", XN, 13, weights={"axes": np.zeros(0, np.int64)}),
    case("int_attr", "ReduceSum", ints(3, 4), 11, axes=[1]),
    case("int", "ReduceMax", ints(3, 4), 13, axes=[0], keepdims=0),
    case("int", "ReduceMin", ints(3, 4), 18, weights={"axes": np.array([1], np.int64)}),
    case("int", "ReduceProd", ints(3, 4, low=-3, high=4), 13, axes=[1]),
    case("bool_any", "ReduceMax", bools(3, 4), 20, weights={"axes": np.array([1], np.int64)}, keepdims=0),
    case("bool_all", "ReduceMin", bools(3, 4), 20, weights={"axes": np.array([1], np.int64)}),
    case("bool_all_axes", "ReduceMin", bools(3, 4, seed=2), 20, keepdims=0),
]

TIES = np.array([[[1, 5, 5, 0], [2, 2, 2, 2], [7, 1, 7, 1]],
                 [[0, 0, 3, 3], [9, 8, 9, 8], [4, 4, 4, 5]]], dtype=np.float32)

CASES += [
    c
    for op in ("ArgMax", "ArgMin")
    for c in (
        case("default", op, XN, 13),
        case("axis_neg1_nokeep", op, XN, 11, axis=-1, keepdims=0),
        case("axis1_opset9", op, XN, 9, axis=1),
        case("ties_first", op, TIES, 12, axis=2),
        case("ties_last", op, TIES, 12, axis=2, select_last_index=1),
        case("ties_last_axis0_nokeep", op, TIES, 13, axis=0, keepdims=0, select_last_index=1),
        case("int", op, ints(3, 5, low=-2, high=3), 13, axis=1),
    )
]

# select_last_index over a symbolic axis: n - 1 comes from the runtime shape.
from op_cases.shape import SymbolicOpCase  # noqa: E402

CASES += [
    SymbolicOpCase(f"{op.lower()}_symbolic_last_index", op, {"X": TIES}, {"axis": -1, "select_last_index": 1},
                   opset=13, symbolic={"X": {0: "batch", 2: "n"}})
    for op in ("ArgMax", "ArgMin")
]

# Max/Min over an empty axis: -inf/+inf (no fp16 comparison: its bound is undefined at inf). The bool
# form is checked by ONNX's conformance cases (onnxruntime refuses empty bool reductions).
CASES += [
    case("empty_set", "ReduceMax", np.zeros((2, 0, 4), np.float32), 18, weights={"axes": np.array([1], np.int64)}),
    case("empty_set_nokeep", "ReduceMin", np.zeros((2, 0, 4), np.float32), 13, axes=[1, 2], keepdims=0),
]
for c in CASES[-2:]:
    c.fp16 = False
