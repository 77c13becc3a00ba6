"""Elementwise unary MIL ops (iOS15 elementwise_unary.py, iOS17 additions): one numpy function each.

fp16 inputs are computed in float32; the executor rounds the result back to the var's dtype.
``inverse``, ``log`` and ``rsqrt`` add their ``epsilon`` first, with the MIL defaults when unset.
``erf`` (numpy has none) is :func:`erf32` (exact gelu interpolates its own table of the normal CDF, ``activation.gelu_exact``).
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from .registry import kernel, specialize

ERF_STEPS = 4096        # table entries per unit of |x|
ERF_END = 4.0           # |x| where the table ends: erf rounds to +-1 in float32 beyond 3.92
ERF_MAX_ERROR = 7e-8    # max |erf32(x) - erf(x)| over float32 x (measured 6.6e-8; tests/test_interpreter_core.py)


@lru_cache(maxsize=None)
def _erf_table() -> np.ndarray:
    """(ERF_STEPS * ERF_END + 1, 2) float32: math.erf at each step and the rise to the next (0 at the end)."""
    n = int(ERF_STEPS * ERF_END)
    values = np.array([math.erf(i / ERF_STEPS) for i in range(n + 2)])
    table = np.empty((n + 1, 2), np.float32)
    table[:, 0] = values[:-1]
    table[:, 1] = np.diff(values)
    table[n, 1] = 0.0
    return table


def erf32(x: np.ndarray) -> np.ndarray:
    """erf of a float32 array, in float32: linear interpolation in a table of math.erf at
    1/ERF_STEPS steps (max abs error ERF_MAX_ERROR; onnxruntime computes its erf in float32 too).
    Ten numpy calls, against 30 for a polynomial with an exp; NaN stays NaN, +-inf gives +-1."""
    if x.ndim == 0:
        return erf32(x.reshape(1)).reshape(())
    table = _erf_table()
    position = np.abs(x)
    position *= np.float32(ERF_STEPS)
    np.minimum(position, np.float32(len(table) - 1), out=position)  # NaN stays NaN
    step = np.floor(position)
    np.fmin(step, np.float32(len(table) - 1), out=step)  # a valid index for NaN too
    position -= step                                     # the fraction of the step (NaN for NaN)
    rows = table.take(step.astype(np.intp), axis=0)
    y = rows[..., 1] * position
    y += rows[..., 0]
    return np.copysign(y, x, out=y)


def _wide(x):
    x = np.asarray(x)
    return x.astype(np.float32) if x.dtype == np.float16 else x


_UNARY = {
    "abs": np.abs,
    "acos": np.arccos,
    "asin": np.arcsin,
    "atan": np.arctan,
    "atanh": np.arctanh,
    "ceil": np.ceil,
    "cos": np.cos,
    "cosh": np.cosh,
    "erf": erf32,
    "exp": np.exp,
    "exp2": np.exp2,
    "floor": np.floor,
    "round": np.round,  # half to even, as MIL's own value inference (0.5 -> 0)
    "sign": np.sign,
    "sin": np.sin,
    "sinh": np.sinh,
    "sqrt": np.sqrt,
    "square": np.square,
    "tan": np.tan,
    "tanh": np.tanh,
    "logical_not": np.logical_not,
}


def _register_unary(op_type, fn):
    @kernel(op_type)
    def run(op, x):
        with np.errstate(all="ignore"):
            return np.asarray(fn(_wide(x)))

    run.__name__ = op_type
    return run


for _op_type, _fn in _UNARY.items():
    _register_unary(_op_type, _fn)


@specialize(*_UNARY)
def unary_plan(op, static, dynamic):
    """No errstate per call (a run ignores fp warnings)."""
    if [name for name, _ in dynamic] != ["x"]:
        return None
    spec = dynamic[0][1]
    if spec.scalar or spec.rank is None or spec.np_dtype is None:
        return None
    fn = _UNARY[op.op_type]
    if spec.np_dtype == np.float16:
        return lambda x: fn(x.astype(np.float32))
    return fn


@kernel("inverse")
def inverse(op, x, epsilon=1e-4):
    with np.errstate(all="ignore"):
        return 1.0 / (_wide(x) + np.float32(epsilon))


@kernel("log")
def log(op, x, epsilon=1e-45):
    with np.errstate(all="ignore"):
        return np.log(_wide(x) + np.float32(epsilon))


@kernel("rsqrt")
def rsqrt(op, x, epsilon=1e-12):
    with np.errstate(all="ignore"):
        return 1.0 / np.sqrt(_wide(x) + np.float32(epsilon))


@kernel("clip")
def clip(op, x, alpha, beta):
    return np.minimum(np.maximum(_wide(x), alpha), beta)


@kernel("threshold")
def threshold(op, x, alpha):
    return np.maximum(_wide(x), alpha)


_CAST_DTYPES = {
    "bool": np.bool_, "int8": np.int8, "uint8": np.uint8, "int16": np.int16, "uint16": np.uint16,
    "int32": np.int32, "fp16": np.float16, "fp32": np.float32,
}


@kernel("cast")
def cast(op, x, dtype):
    if dtype not in _CAST_DTYPES:
        raise ValueError(f"cast '{op.name}': dtype '{dtype}' is not a MIL cast target")
    x = np.asarray(x)
    target = _CAST_DTYPES[dtype]
    if np.issubdtype(target, np.integer) and np.issubdtype(x.dtype, np.floating):
        x = np.trunc(x)  # float -> int truncates toward zero
    with np.errstate(all="ignore"):
        return x.astype(target)
