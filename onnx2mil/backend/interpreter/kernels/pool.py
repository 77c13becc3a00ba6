"""avg_pool (exclude_padding_from_average, ceil_mode), max_pool and l2_pool, 1-D to 3-D.

One vectorised reduction per kernel tap over the padded input; ceil_mode windows that run past
the padded input see -inf (max) or nothing (avg, l2), and an average divides by the number of
elements its window covers inside the padded input (or inside the input alone when
exclude_padding_from_average), as PyTorch's count_include_pad does.
"""
from __future__ import annotations

from itertools import product

import numpy as np

from .activation import wide
from .conv import int_list, same_pads
from .registry import kernel


def _geometry(x, kernel_sizes, strides, pad_type, pad, ceil_mode):
    """(kernel, strides, [begin, end] pads, output sizes, extra end padding for ceil_mode)."""
    n = x.ndim - 2
    kernel_shape = int_list(kernel_sizes, n, 1)
    strides = int_list(strides, n, 1)
    in_sizes = x.shape[2:]
    if pad_type == "valid":
        pads = [0] * (2 * n)
    elif pad_type == "custom":
        pads = int_list(pad, 2 * n, 0)
    elif pad_type in ("same", "same_lower"):
        pads = same_pads(in_sizes, kernel_shape, strides, pad_type == "same_lower")
    else:
        raise ValueError(f"unknown pad_type '{pad_type}'")
    out, extra = [], []
    for i, (size, k, s) in enumerate(zip(in_sizes, kernel_shape, strides)):
        total = pads[2 * i] + pads[2 * i + 1]
        if ceil_mode:
            o = (size + total - k + s - 1) // s + 1
            if (o - 1) * s >= size + pads[2 * i] and total > 0:
                o -= 1
        else:
            o = (size + total - k) // s + 1
        out.append(o)
        extra.append(max(0, (o - 1) * s + k - (size + total)))
    return kernel_shape, strides, pads, out, extra


def _pool(x, kernel_shape, strides, out, reduce, init):
    """reduce(acc, tap view) over every kernel tap of the padded input x."""
    acc = np.full(x.shape[:2] + tuple(out), init, dtype=x.dtype)
    for tap in product(*(range(k) for k in kernel_shape)):
        view = x[(slice(None), slice(None)) + tuple(slice(t, t + s * (o - 1) + 1, s)
                                                    for t, s, o in zip(tap, strides, out))]
        acc = reduce(acc, view, out=acc)
    return acc


def _padded(x, pads, extra, value, extra_value):
    n = x.ndim - 2
    widths = [(0, 0), (0, 0)] + [(pads[2 * i], pads[2 * i + 1]) for i in range(n)]
    y = np.pad(x, widths, constant_values=value) if any(pads) else x
    if any(extra):
        y = np.pad(y, [(0, 0), (0, 0)] + [(0, e) for e in extra], constant_values=extra_value)
    return y


@kernel("max_pool")
def max_pool(op, x, kernel_sizes, strides=None, pad_type="valid", pad=None, ceil_mode=False):
    x = wide(x)
    kernel_shape, strides, pads, out, extra = _geometry(x, kernel_sizes, strides, pad_type, pad, ceil_mode)
    return _pool(_padded(x, pads, extra, -np.inf, -np.inf), kernel_shape, strides, out, np.maximum, -np.inf)


def _window_counts(x_shape, kernel_shape, strides, pads, extra, out, include_padding: bool):
    ones = np.ones((1, 1) + tuple(x_shape[2:]), dtype=np.float32)
    ones = _padded(ones, pads, extra, 1.0 if include_padding else 0.0, 0.0)
    return _pool(ones, kernel_shape, strides, out, np.add, 0.0)


@kernel("avg_pool")
def avg_pool(op, x, kernel_sizes, strides=None, pad_type="valid", pad=None, exclude_padding_from_average=False,
             ceil_mode=False):
    x = wide(x)
    kernel_shape, strides, pads, out, extra = _geometry(x, kernel_sizes, strides, pad_type, pad, ceil_mode)
    total = _pool(_padded(x, pads, extra, 0.0, 0.0), kernel_shape, strides, out, np.add, 0.0)
    counts = _window_counts(x.shape, kernel_shape, strides, pads, extra, out, not exclude_padding_from_average)
    return total / counts


@kernel("l2_pool")
def l2_pool(op, x, kernel_sizes, strides=None, pad_type="valid", pad=None, ceil_mode=False):
    x = wide(x)
    kernel_shape, strides, pads, out, extra = _geometry(x, kernel_sizes, strides, pad_type, pad, ceil_mode)
    return np.sqrt(_pool(_padded(np.square(x), pads, extra, 0.0, 0.0), kernel_shape, strides, out, np.add, 0.0))
