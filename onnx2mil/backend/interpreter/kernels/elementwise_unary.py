"""Elementwise unary MIL ops (iOS15 elementwise_unary.py, iOS17 additions): one numpy function each.

fp16 inputs are computed in float32; the executor rounds the result back to the var's dtype.
``inverse``, ``log`` and ``rsqrt`` add their ``epsilon`` first, with the MIL defaults when unset.
"""
from __future__ import annotations

import math

import numpy as np

from .registry import kernel, specialize

_erf = np.vectorize(math.erf, otypes=[np.float32])


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
    "erf": lambda x: _erf(x) if x.size else x.astype(np.float32),
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
