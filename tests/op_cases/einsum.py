"""Einsum: matmul-shaped pairs, transposes, sums, diagonals, ellipses, implicit outputs, 3 operands."""
import numpy as np

from harness import OpCase, rand


def einsum(id, equation, *shapes, opset=12, dtype=np.float32):
    inputs = {f"x{i}": rand(*s, seed=i).astype(dtype) for i, s in enumerate(shapes)}
    return OpCase(f"einsum_{id}", "Einsum", inputs, {"equation": equation}, opset=opset)


CASES = [
    einsum("transpose", "ij->ji", (3, 4)),
    einsum("sum", "ij->i", (3, 4)),
    einsum("total", "ij->", (3, 4)),
    einsum("inner", "i,i", (5,), (5,)),
    einsum("outer", "i,j->ij", (3,), (4,)),
    einsum("batch_matmul", "bij, bjk -> bik", (5, 2, 3), (5, 3, 4), opset=13),
    einsum("attention_scores", "bhqd,bhkd->bhqk", (2, 3, 4, 5), (2, 3, 6, 5)),
    einsum("implicit_matmul", "ij,jk", (3, 4), (4, 2)),
    einsum("ellipsis_matmul", "...ij,...jk->...ik", (2, 3, 4), (1, 4, 5)),
    einsum("ellipsis_one_side", "...ij,jk->...ik", (2, 2, 3, 4), (4, 5), opset=18),
    einsum("batch_diagonal", "...ii->...i", (3, 5, 5)),
    einsum("trace", "ii", (4, 4)),
    einsum("sum_only_operand_letter", "ij,jk->k", (3, 4), (4, 2)),
    einsum("three_operands", "ij,jk,kl->il", (2, 3), (3, 4), (4, 2)),
    einsum("int64_matmul", "ij,jk->ik", (2, 3), (3, 2), dtype=np.int64),
    einsum("bilinear", "bn,anm,bm->ba", (2, 3), (4, 3, 5), (2, 5)),
]
CASES[-2].inputs = {k: np.arange(v.size, dtype=np.int64).reshape(v.shape) - 2 for k, v in CASES[-2].inputs.items()}

# Symbolic dims: the broadcast-product path (no static reshape).
from op_cases.shape import SymbolicOpCase  # noqa: E402

CASES += [
    SymbolicOpCase("einsum_symbolic_batch_matmul", "Einsum", {"x0": rand(3, 2, 4), "x1": rand(3, 4, 5, seed=1)},
                   {"equation": "bij,bjk->bik"}, opset=12, symbolic={"x0": {0: "b"}, "x1": {0: "b"}}),
    SymbolicOpCase("einsum_symbolic_sum_transpose", "Einsum", {"x0": rand(3, 4, 2)}, {"equation": "abc->cb"},
                   opset=12, symbolic={"x0": {0: "n", 1: "m"}}),
]

REFUSED = [
    (einsum("rank6_output_refused", "abc,def->abcdef", (2, 2, 2), (2, 2, 2)), "rank <= 5"),
    (einsum("six_indices_three_operands_refused", "ab,bcd,def->af", (2, 2), (2, 2, 2), (2, 2, 2)), "rank-5"),
]
