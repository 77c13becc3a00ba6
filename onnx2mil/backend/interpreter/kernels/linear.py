"""linear, matmul (transpose_x/y, numpy broadcasting, rank-1 operands) and einsum; fp16 operands
are multiplied in fp32."""
from __future__ import annotations

import numpy as np

from .activation import wide
from .registry import kernel


@kernel("linear")
def linear(op, x, weight, bias=None):
    """x @ weight.T + bias; weight is [D_out, D_in]."""
    y = np.matmul(wide(x), wide(weight).T)
    return y + wide(bias) if bias is not None else y


@kernel("matmul")
def matmul(op, x, y, transpose_x=False, transpose_y=False):
    x, y = wide(x), wide(y)
    if transpose_x and x.ndim >= 2:
        x = np.swapaxes(x, -1, -2)
    if transpose_y and y.ndim >= 2:
        y = np.swapaxes(y, -1, -2)
    return np.matmul(x, y)


@kernel("einsum")
def einsum(op, values, equation):
    return np.einsum(equation.replace(" ", ""), *(wide(v) for v in values), optimize=True)
