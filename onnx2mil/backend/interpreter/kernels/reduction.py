"""MIL reductions (iOS15/iOS17 reduction.py): ``reduce_*`` over ``axes`` (all when unset) and
``reduce_argmax``/``reduce_argmin`` over one ``axis`` (first index on ties, as numpy).
"""
from __future__ import annotations

import numpy as np

from .registry import kernel


def _wide(x):
    x = np.asarray(x)
    return x.astype(np.float32) if x.dtype == np.float16 else x


def _log_sum_exp(x, axis, keepdims):
    if x.size == 0:
        return np.log(np.sum(np.exp(x), axis=axis, keepdims=keepdims))
    peak = np.max(x, axis=axis, keepdims=True)
    peak = np.where(np.isfinite(peak), peak, 0)
    total = np.sum(np.exp(x - peak), axis=axis, keepdims=True)
    out = np.log(total) + peak
    return out if keepdims else np.squeeze(out, axis=axis)


_REDUCTIONS = {
    "reduce_sum": lambda x, axis, keepdims: np.sum(x, axis=axis, keepdims=keepdims),
    "reduce_mean": lambda x, axis, keepdims: np.mean(x, axis=axis, keepdims=keepdims),
    "reduce_prod": lambda x, axis, keepdims: np.prod(x, axis=axis, keepdims=keepdims),
    "reduce_max": lambda x, axis, keepdims: np.max(x, axis=axis, keepdims=keepdims),
    "reduce_min": lambda x, axis, keepdims: np.min(x, axis=axis, keepdims=keepdims),
    "reduce_sum_square": lambda x, axis, keepdims: np.sum(np.square(x), axis=axis, keepdims=keepdims),
    "reduce_l1_norm": lambda x, axis, keepdims: np.sum(np.abs(x), axis=axis, keepdims=keepdims),
    "reduce_l2_norm": lambda x, axis, keepdims: np.sqrt(np.sum(np.square(x), axis=axis, keepdims=keepdims)),
    "reduce_log_sum": lambda x, axis, keepdims: np.log(np.sum(x, axis=axis, keepdims=keepdims)),
    "reduce_log_sum_exp": _log_sum_exp,
}


def _axes(x, axes):
    if axes is None:
        return tuple(range(x.ndim))
    return tuple(int(a) % x.ndim for a in np.atleast_1d(axes))


def _register_reduction(op_type, fn):
    @kernel(op_type)
    def run(op, x, axes=None, keep_dims=False):
        x = _wide(x)
        with np.errstate(all="ignore"):
            return np.asarray(fn(x, _axes(x, axes), bool(keep_dims)))

    run.__name__ = op_type
    return run


for _op_type, _fn in _REDUCTIONS.items():
    _register_reduction(_op_type, _fn)


def _register_arg(op_type, fn):
    @kernel(op_type)
    def run(op, x, axis=-1, keep_dims=False, output_dtype="int32"):
        x = np.asarray(x)
        out = fn(x, axis=int(axis))
        if keep_dims:
            out = np.expand_dims(out, int(axis) % x.ndim)
        return out.astype(np.uint16 if str(output_dtype).lower() == "uint16" else np.int32)

    run.__name__ = op_type
    return run


_register_arg("reduce_argmax", np.argmax)
_register_arg("reduce_argmin", np.argmin)
