"""LpNormalization (p=1/2, axes) and LRN. onnxruntime runs LRN on 4-D inputs with odd sizes only,
so the even-size and rank-3/5 forms have no reference here."""
from harness import OpCase, rand


def lp_norm(id, shape, opset=17, **attrs):
    x = rand(*shape)
    x[0, 0] = 0.0  # an all-zero slice along the last axis for the default axis
    return OpCase(f"lpnormalization_{id}", "LpNormalization", {"X": x}, attrs, opset=opset)


def lrn(id, shape, size, opset=13, **attrs):
    return OpCase(f"lrn_{id}", "LRN", {"X": rand(*shape, low=-2, high=2)}, dict(size=size, **attrs), opset=opset)


CASES = [
    lp_norm("default", (2, 3, 5)),
    lp_norm("p1_axis1", (2, 4, 3), p=1, axis=1),
    lp_norm("p2_axis0", (3, 4), axis=0, opset=11),
    lp_norm("p1_negative_axis", (2, 3, 4, 5), p=1, axis=-3),
    lrn("size3", (1, 6, 4, 4), 3),
    lrn("size5_attrs", (2, 8, 3, 5), 5, alpha=1e-2, beta=0.5, bias=2.0, opset=11),
    lrn("size1", (1, 4, 3, 3), 1, alpha=0.5),
]

# Symbolic input dims.
from op_cases.shape import SymbolicOpCase  # noqa: E402


def symbolic(case, dims):
    return SymbolicOpCase(case.id + "_symbolic", case.op_type, case.inputs, case.attrs, opset=case.opset,
                          symbolic={"X": dims})


CASES += [
    symbolic(lp_norm("p1_axis1", (2, 4, 3), p=1, axis=1), {0: "n", 2: "l"}),
    symbolic(lrn("size3", (1, 6, 4, 4), 3), {2: "h", 3: "w"}),
]

REFUSED = [
    (lp_norm("p3", (2, 3), p=3), "p=1 and p=2"),
    (OpCase("lpnormalization_rank6", "LpNormalization", {"X": rand(1, 2, 2, 2, 2, 2)}), "rank <= 5"),
]
