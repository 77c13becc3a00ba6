"""linear, matmul (transpose_x/y, numpy broadcasting, rank-1 operands) and einsum; fp16 operands
are multiplied in fp32."""
from __future__ import annotations

import numpy as np

from .activation import wide
from .conv import MAX_CONVERTED_WEIGHT
from .registry import kernel, specialize


def _linear(x: np.ndarray, weight_t: np.ndarray, bias) -> np.ndarray:
    """x @ weight_t + bias for a C-contiguous ``weight_t`` [D_in, D_out]: one 2-D BLAS product of
    the rows of x (np.dot: less wrapping than a batched matmul), the bias added in place."""
    if x.size == 0 or x.ndim == 0:
        y = np.matmul(x, weight_t)
        return y + bias if bias is not None else y
    y = np.dot(x.reshape(-1, x.shape[-1]), weight_t)
    if bias is not None:
        y += bias
    return y.reshape(x.shape[:-1] + weight_t.shape[1:])


@kernel("linear")
def linear(op, x, weight, bias=None):
    """x @ weight.T + bias; weight is [D_out, D_in]."""
    return _linear(wide(x), np.ascontiguousarray(wide(weight).T), None if bias is None else wide(bias))


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


def _tensor(spec) -> bool:
    return not spec.scalar and spec.rank is not None and spec.np_dtype is not None


@specialize("linear")
def linear_plan(op, static, dynamic):
    """The widened, transposed weight and the bias prepared once."""
    if [name for name, _ in dynamic] != ["x"] or static.get("weight") is None or not _tensor(dynamic[0][1]):
        return None
    weight = np.asarray(static["weight"])
    if weight.dtype == np.float16 and weight.size > MAX_CONVERTED_WEIGHT:
        return None
    weight_t = np.ascontiguousarray(wide(weight).T)
    bias = static.get("bias")
    bias = None if bias is None else wide(bias)
    spec = dynamic[0][1]
    if spec.np_dtype == np.float16:
        return lambda x: _linear(x.astype(np.float32), weight_t, bias)
    if spec.shape is None or 0 in spec.shape or spec.rank == 0 or bias is None or spec.shape[-1] != weight_t.shape[0]:
        return lambda x: _linear(x, weight_t, bias)
    # a static shape: _linear's steps with its shapes worked out once
    shape, rows, out_shape = spec.shape, (-1, spec.shape[-1]), spec.shape[:-1] + weight_t.shape[1:]
    dot = np.dot

    def run(x):
        if x.shape != shape:
            return _linear(x, weight_t, bias)
        y = dot(x.reshape(rows), weight_t)
        y += bias
        return y.reshape(out_shape)

    return run


@specialize("matmul")
def matmul_plan(op, static, dynamic):
    if [name for name, _ in dynamic] != ["x", "y"] or not all(_tensor(spec) for _, spec in dynamic):
        return None
    (_, x_spec), (_, y_spec) = dynamic
    if x_spec.np_dtype == np.float16 or y_spec.np_dtype == np.float16:
        return None
    swap_x = bool(static.get("transpose_x", False)) and x_spec.rank >= 2
    swap_y = bool(static.get("transpose_y", False)) and y_spec.rank >= 2
    if not swap_x and not swap_y:
        return np.matmul
    return lambda x, y: np.matmul(np.swapaxes(x, -1, -2) if swap_x else x, np.swapaxes(y, -1, -2) if swap_y else y)
