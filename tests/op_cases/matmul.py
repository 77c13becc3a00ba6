"""MatMul across ranks (1-D, 2-D, batched broadcast, int) and Gemm's alpha/beta/transA/transB/C forms."""
import numpy as np

from harness import OpCase, rand
from op_cases.binary import ints


def matmul(id, a, b, const_b=False, opset=13):
    weights = {"B": b} if const_b else {}
    inputs = {"A": a} if const_b else {"A": a, "B": b}
    return OpCase(f"matmul_{id}", "MatMul", inputs, weights=weights, opset=opset)


def gemm(id, a_shape, b_shape, c_shape=None, const_b=True, const_c=True, opset=13, **attrs):
    inputs = {"A": rand(*a_shape)}
    weights = {}
    (weights if const_b else inputs)["B"] = rand(*b_shape, seed=1)
    if c_shape is not None:
        (weights if const_c else inputs)["C"] = rand(*c_shape, seed=2)
    order = ["A", "B"] + (["C"] if c_shape is not None else [])
    return OpCase(f"gemm_{id}", "Gemm", inputs, attrs, weights, input_order=order, opset=opset)


CASES = [
    matmul("2d", rand(4, 6), rand(6, 5, seed=1)),
    matmul("2d_const", rand(4, 6), rand(6, 5, seed=1), const_b=True),
    matmul("batched_broadcast", rand(2, 1, 4, 6), rand(3, 6, 5, seed=1)),
    matmul("batched_const", rand(2, 3, 4, 6), rand(6, 5, seed=1), const_b=True, opset=9),
    matmul("vector_matrix", rand(6), rand(2, 6, 5, seed=1)),
    matmul("matrix_vector", rand(2, 4, 6), rand(6, seed=1)),
    matmul("vector_vector", rand(6), rand(6, seed=1)),
    matmul("vector_const_matrix", rand(6), rand(6, 3, seed=1), const_b=True),
    matmul("int", ints(3, 4), ints(4, 2, seed=1)),
    gemm("default", (4, 6), (6, 5), (5,)),
    gemm("trans_b_alpha_beta", (4, 6), (5, 6), (1, 5), transB=1, alpha=0.5, beta=2.0, opset=11),
    gemm("trans_a", (6, 4), (6, 5), (4, 5), transA=1, opset=9),
    gemm("trans_both", (6, 4), (5, 6), (4, 1), transA=1, transB=1, alpha=1.5, opset=7),
    gemm("matrix_c", (4, 6), (6, 5), (4, 5), beta=0.5),
    gemm("scalar_c", (4, 6), (6, 5), (1,), alpha=2.0),
    gemm("no_c", (4, 6), (6, 5), opset=11),
    gemm("no_c_alpha_dynamic_b", (4, 6), (6, 5), const_b=False, alpha=3.0),
    gemm("dynamic_b_c", (4, 6), (5, 6), (4, 5), const_b=False, const_c=False, transB=1, beta=0.25),
    gemm("dynamic_c", (4, 6), (6, 5), (4, 5), const_c=False, alpha=0.5),
    gemm("beta_zero", (4, 6), (6, 5), (5,), beta=0.0),
]
