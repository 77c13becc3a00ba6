"""Activations (defs/iOS15/activation.py and the iOS17 versions, whose alpha/beta may have
another dtype than x): computed in fp32 for fp16 inputs; per-channel parameters (prelu,
softplus_parametric) broadcast along axis 1. Exact gelu is x * Phi(x), Phi interpolated in a float32
table (:func:`gelu_exact`)."""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from .registry import kernel, specialize



def wide(x) -> np.ndarray:
    """fp16 -> fp32; other dtypes unchanged."""
    x = np.asarray(x)
    return x.astype(np.float32) if x.dtype == np.float16 else x


def per_channel(param, rank: int) -> np.ndarray:
    """A [C] parameter shaped to broadcast along axis 1 of a rank-``rank`` tensor."""
    param = np.asarray(param, dtype=np.float32)
    return param.reshape((1, -1) + (1,) * (rank - 2)) if param.ndim == 1 else param


def sigmoid(x: np.ndarray) -> np.ndarray:
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


GELU_STEPS = 2048   # table entries per unit of x
GELU_END = 6.0      # Phi(x) is 0 below -GELU_END and 1 above (|x| Phi(-|x|) < 6e-9 there)
_GELU_SCALE = np.float32(GELU_STEPS)
_GELU_REACH = np.float32(GELU_END * GELU_STEPS)
try:                                   # the clip ufunc itself: np.clip wraps it in three Python calls
    _clip = np._core.umath.clip
except AttributeError:                 # numpy < 2
    _clip = np.core.umath.clip


@lru_cache(maxsize=None)
def _phi_table() -> tuple:
    """(base, slope) float32: Phi at each step of [-GELU_END, GELU_END] (0 and 1 at the ends) and the
    rise to the next step (0 after the last)."""
    n = int(2 * GELU_END * GELU_STEPS) + 1
    values = np.array([0.5 * math.erfc(-(i / GELU_STEPS - GELU_END) / math.sqrt(2)) for i in range(n)])
    values[0], values[-1] = 0.0, 1.0
    slope = np.zeros(n, np.float32)
    slope[:-1] = np.diff(values)
    return values.astype(np.float32), slope


def gelu_exact(x: np.ndarray) -> np.ndarray:
    """Exact gelu x * Phi(x) of a float32 array, Phi (the normal CDF, (1 + erf(x/sqrt 2)) / 2)
    linearly interpolated in a table at 1/GELU_STEPS steps: x * GELU_STEPS, its floor and the
    fraction are exact in float32, so the error is the table's (interpolation 7e-9, float32
    rounding) and the product's, within 1.5e-7 * max(1, |x|) of math (tests/test_interpreter_core.py).
    Eleven numpy calls. +inf gives +inf; -inf gives NaN and NaN stays NaN, as the float32
    ``0.5 * x * (1 + erf(x / sqrt 2))`` of onnxruntime."""
    if x.ndim == 0:
        return gelu_exact(x.reshape(1)).reshape(())
    base, slope = _phi_table()
    position = x * _GELU_SCALE
    _clip(position, -_GELU_REACH, _GELU_REACH, out=position)   # NaN stays NaN
    step = np.floor(position)
    position -= step                                  # the fraction of the step (NaN for NaN)
    step += _GELU_REACH
    index = step.astype(np.intp)                      # NaN's index is clipped to the table by take
    phi = slope.take(index, mode="clip")
    phi *= position
    phi += base.take(index, mode="clip")
    phi *= x
    return phi


@kernel("relu")
def relu(op, x):
    return np.maximum(x, 0)


@kernel("relu6")
def relu6(op, x):
    return np.clip(x, 0, 6)


@kernel("sigmoid")
def sigmoid_op(op, x):
    return sigmoid(wide(x))


@kernel("sigmoid_hard")
def sigmoid_hard(op, x, alpha, beta):
    return np.clip(np.float32(alpha) * wide(x) + np.float32(beta), 0.0, 1.0)


@kernel("silu")
def silu(op, x):
    x = wide(x)
    return x * sigmoid(x)


@kernel("softplus")
def softplus(op, x):
    x = wide(x)
    return np.logaddexp(0, x)


@kernel("softplus_parametric")
def softplus_parametric(op, x, alpha, beta):
    x = wide(x)
    return per_channel(alpha, x.ndim) * np.logaddexp(0, per_channel(beta, x.ndim) * x)


@kernel("softsign")
def softsign(op, x):
    x = wide(x)
    return x / (1 + np.abs(x))


SHORT_ROW = 32   # softmax over a last axis this short reduces in a transposed copy


def softmax_compute(x: np.ndarray, axis) -> np.ndarray:
    """exp(x - max) / sum along ``axis`` of a float array. Over a short last axis (at most SHORT_ROW
    entries, many rows) numpy's reductions loop per row, so the rows are reduced as the columns of
    a transposed copy (max and sum then run along contiguous rows of the copy: 11 instead of 13 us
    on 64 rows of 16, 70 instead of 113 on 1024); the result is a view of the transposed copy."""
    if x.ndim >= 2 and axis in (-1, x.ndim - 1) and 1 < x.shape[-1] <= SHORT_ROW and x.size >= 8 * x.shape[-1]:
        columns = x.reshape(-1, x.shape[-1]).T.copy()
        columns -= np.maximum.reduce(columns, axis=0)
        np.exp(columns, out=columns)
        columns /= np.add.reduce(columns, axis=0)
        return columns.T.reshape(x.shape)         # a transposed view: consumers take strided arrays
    e = x - np.maximum.reduce(x, axis=axis, keepdims=True)
    np.exp(e, out=e)
    e /= np.add.reduce(e, axis=axis, keepdims=True)
    return e


@kernel("softmax")
def softmax(op, x, axis=-1):
    return softmax_compute(wide(x), axis)


@kernel("gelu")
def gelu(op, x, mode="EXACT"):
    x = wide(x)
    if mode == "EXACT":
        return gelu_exact(x)
    if mode == "TANH_APPROXIMATION":
        return 0.5 * x * (1 + np.tanh(np.float32(np.sqrt(2 / np.pi)) * (x + np.float32(0.044715) * x ** 3)))
    if mode == "SIGMOID_APPROXIMATION":
        return x * sigmoid(np.float32(1.702) * x)
    raise ValueError(f"gelu: unknown mode '{mode}'")


@kernel("elu")
def elu(op, x, alpha):
    x = wide(x)
    return np.where(x > 0, x, np.float32(alpha) * np.expm1(np.minimum(x, 0)))


@kernel("leaky_relu")
def leaky_relu(op, x, alpha):
    x = wide(x)
    return np.where(x >= 0, x, np.float32(alpha) * x)


@kernel("linear_activation")
def linear_activation(op, x, alpha, beta):
    return np.float32(alpha) * wide(x) + np.float32(beta)


@kernel("prelu")
def prelu(op, x, alpha):
    x = wide(x)
    return np.where(x >= 0, x, per_channel(alpha, x.ndim) * x)


@kernel("scaled_tanh")
def scaled_tanh(op, x, alpha, beta):
    return np.float32(alpha) * np.tanh(np.float32(beta) * wide(x))


@kernel("thresholded_relu")
def thresholded_relu(op, x, alpha):
    x = wide(x)
    return np.where(x >= np.float32(alpha), x, 0)


@kernel("clamped_relu")
def clamped_relu(op, x, alpha, beta):
    x = wide(x)
    return np.minimum(np.where(x >= 0, x, np.float32(alpha) * x), np.float32(beta))



@specialize("gelu")
def gelu_plan(op, static, dynamic):
    if [name for name, _ in dynamic] != ["x"] or static.get("mode", "EXACT") != "EXACT":
        return None
    spec = dynamic[0][1]
    if spec.scalar or spec.rank is None or spec.np_dtype not in (np.float16, np.float32):
        return None
    fp16 = spec.np_dtype == np.float16

    if fp16:
        return lambda x: gelu_exact(x.astype(np.float32))
    if spec.shape is None or not spec.shape:
        return gelu_exact
    base, slope = _phi_table()
    floor, clip, scale, reach = np.floor, _clip, _GELU_SCALE, _GELU_REACH

    def run(x):
        """gelu_exact's steps, for float32 tensors of rank >= 1."""
        if x.ndim == 0:
            return gelu_exact(x)
        position = x * scale
        clip(position, -reach, reach, out=position)
        step = floor(position)
        position -= step
        step += reach
        index = step.astype(np.intp)
        phi = slope.take(index, mode="clip")
        phi *= position
        phi += base.take(index, mode="clip")
        phi *= x
        return phi

    return run


@specialize("softmax")
def softmax_plan(op, static, dynamic):
    if [name for name, _ in dynamic] != ["x"]:
        return None
    spec = dynamic[0][1]
    if spec.scalar or spec.rank is None or spec.np_dtype not in (np.float16, np.float32):
        return None
    axis = static.get("axis", -1)
    fp16 = spec.np_dtype == np.float16

    if fp16:
        return lambda x: softmax_compute(x.astype(np.float32), axis)
    shape = spec.shape
    if shape is None or not (len(shape) >= 2 and axis in (-1, len(shape) - 1) and 1 < shape[-1] <= SHORT_ROW
                             and int(np.prod(shape)) >= 8 * shape[-1]):
        return lambda x: softmax_compute(x, axis)
    columns_shape = (-1, shape[-1])
    maximum, add, exp = np.maximum.reduce, np.add.reduce, np.exp

    def run(x):
        """softmax_compute's short-row steps, for float32 inputs of the planned shape."""
        if x.shape != shape:
            return softmax_compute(x, axis)
        columns = x.reshape(columns_shape).T.copy()
        columns -= maximum(columns, axis=0)
        exp(columns, out=columns)
        columns /= add(columns, axis=0)
        return columns.T.reshape(shape)

    return run
