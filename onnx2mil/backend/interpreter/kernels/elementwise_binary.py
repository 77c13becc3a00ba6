"""Elementwise binary MIL ops (iOS15 elementwise_binary.py) with numpy broadcasting.

Arithmetic keeps the promoted input dtype (fp16 computed in float32); comparisons and logical ops
return bool. ``floor_div``/``mod`` follow Python's floor semantics, as MIL's value inference does.
"""
from __future__ import annotations

import numpy as np

from .registry import kernel, specialize


def _wide(x):
    """fp16 is computed in float32, and so is float64: MIL has no fp64, a float64 here is a Python
    float scalar promoted by numpy (it would turn every fp32 result into a float64 copy)."""
    x = np.asarray(x)
    return x.astype(np.float32) if x.dtype in (np.float16, np.float64) else x


def _real_div(x, y):
    if np.issubdtype(x.dtype, np.integer) and np.issubdtype(y.dtype, np.integer):
        return np.trunc(np.true_divide(x, y))
    return np.true_divide(x, y)


def _pow(x, y):
    if np.issubdtype(x.dtype, np.integer) and np.issubdtype(y.dtype, np.integer):
        return np.power(x.astype(np.float64), y).astype(np.int64)  # ints to negative powers
    if _squares(x.dtype, x.ndim, y):
        return np.square(x)
    return np.power(x, y)


def _squares(x_dtype, x_rank: int, y) -> bool:
    """pow(x, 2) of a float x is np.square(x): the correctly rounded x * x, and no libm pow per element."""
    return x_dtype.kind == "f" and y.size == 1 and y.ndim <= x_rank and y.reshape(()) == 2


_BINARY = {
    "add": np.add,
    "sub": np.subtract,
    "mul": np.multiply,
    "real_div": _real_div,
    "floor_div": np.floor_divide,
    "mod": np.mod,
    "pow": _pow,
    "maximum": np.maximum,
    "minimum": np.minimum,
    "equal": np.equal,
    "not_equal": np.not_equal,
    "greater": np.greater,
    "greater_equal": np.greater_equal,
    "less": np.less,
    "less_equal": np.less_equal,
    "logical_and": np.logical_and,
    "logical_or": np.logical_or,
    "logical_xor": np.logical_xor,
}


def _register_binary(op_type, fn):
    @kernel(op_type)
    def run(op, x, y):
        with np.errstate(all="ignore"):
            return np.asarray(fn(_wide(x), _wide(y)))

    run.__name__ = op_type
    return run


for _op_type, _fn in _BINARY.items():
    _register_binary(_op_type, _fn)


def _widen_spec(spec) -> bool:
    """Whether ``_wide`` converts the values of a var of this spec (kernel form: arrays of its dtype)."""
    return spec.np_dtype in (np.float16, np.float64)


def tensor_specs(dynamic: list) -> bool:
    """Every dynamic input is a tensor of a known dtype (so its value is an ndarray of that dtype)."""
    return all(not spec.scalar and spec.rank is not None and spec.np_dtype is not None for _, spec in dynamic)


@specialize(*_BINARY)
def binary_plan(op, static, dynamic):
    """The constant operand widened once; no errstate per call (a run ignores fp warnings)."""
    fn = _BINARY[op.op_type]
    names = [name for name, _ in dynamic]
    if not tensor_specs(dynamic) or sorted(names) not in (["x"], ["y"], ["x", "y"]):
        return None
    if op.op_type in ("pow", "real_div") and any(spec.np_dtype.kind == "f" for _, spec in dynamic):
        fn = np.power if op.op_type == "pow" else np.true_divide  # a float operand: no integer branch
    f32 = np.float32
    if names == ["x", "y"]:
        wide_x, wide_y = (_widen_spec(spec) for _, spec in dynamic)
        if wide_x and wide_y:
            return lambda x, y: fn(x.astype(f32), y.astype(f32))
        if wide_x:
            return lambda x, y: fn(x.astype(f32), y)
        if wide_y:
            return lambda x, y: fn(x, y.astype(f32))
        return fn
    wide = _widen_spec(dynamic[0][1])
    if names == ["x"]:
        y = _wide(static["y"])
        if op.op_type == "pow" and _squares(dynamic[0][1].np_dtype, dynamic[0][1].rank, y):
            return (lambda x: np.square(x.astype(f32))) if wide else np.square
        return (lambda x: fn(x.astype(f32), y)) if wide else (lambda x: fn(x, y))
    x = _wide(static["x"])
    return (lambda y: fn(x, y.astype(f32))) if wide else (lambda y: fn(x, y))
