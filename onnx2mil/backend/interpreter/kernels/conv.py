"""conv and conv_transpose, 1-D to 3-D, every pad type, groups, dilations, output_shape.

conv: a strided window view of the padded input, then one matmul per group (im2col); depthwise
convs (one input channel per group) accumulate over kernel taps instead. conv_transpose: one matmul
to every (output channel, tap) pair, then a scatter-add per kernel tap into the full output, then
the crop the pads ask for. Loops run over kernel taps only, never over elements. fp16 inputs are
computed in fp32 (the executor rounds the result back to fp16).

Specializations (constant weight and bias, the usual case) prepare the weight matrices, bias and
the per-input-shape geometry (pads, window strides, tap slices) once, and run the same numpy
operations as the kernels.
"""
from __future__ import annotations

import math
from itertools import product

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .registry import kernel, specialize


def compute_dtype(x: np.ndarray) -> np.dtype:
    """fp32 for fp16 (numpy has no fast fp16 matmul), else the input's float dtype."""
    return np.dtype(np.float32) if x.dtype in (np.float16, np.int32, np.int8, np.uint8) else x.dtype


def int_list(value, n: int, default: int) -> list[int]:
    if value is None:
        return [default] * n
    if isinstance(value, np.ndarray):
        return value.reshape(-1).tolist()
    return [int(v) for v in np.asarray(value).reshape(-1)]


def same_pads(in_sizes, kernel, strides, lower: bool) -> list[int]:
    """[begin, end] per spatial dim so that out = ceil(in / stride); the odd element goes to the
    end (``same``) or to the beginning (``same_lower``)."""
    pads = []
    for size, k, s in zip(in_sizes, kernel, strides):
        total = max(0, s * math.ceil(size / s) - size + k - s)
        small, big = total // 2, total - total // 2
        pads += [big, small] if lower else [small, big]
    return pads


def conv_pads(pad_type: str, pad, in_sizes, eff_kernel, strides) -> list[int]:
    n = len(in_sizes)
    if pad_type == "valid":
        return [0] * (2 * n)
    if pad_type == "custom":
        return int_list(pad, 2 * n, 0)
    if pad_type in ("same", "same_lower"):
        return same_pads(in_sizes, eff_kernel, strides, pad_type == "same_lower")
    raise ValueError(f"unknown pad_type '{pad_type}'")


def pad_spatial(x: np.ndarray, pads: list[int], value=0.0) -> np.ndarray:
    """Pad the spatial dims (after N, C) by MIL [begin, end] pairs (non-negative)."""
    if not any(pads):
        return x
    n = len(pads) // 2
    lead = x.ndim - n
    shape = x.shape[:lead] + tuple(d + pads[2 * i] + pads[2 * i + 1] for i, d in enumerate(x.shape[lead:]))
    out = np.full(shape, value, dtype=x.dtype) if value else np.zeros(shape, dtype=x.dtype)
    out[(slice(None),) * lead + tuple(slice(pads[2 * i], pads[2 * i] + d) for i, d in enumerate(x.shape[lead:]))] = x
    return out


def windows(xp: np.ndarray, kernel, strides, dilations) -> tuple[np.ndarray, list[int]]:
    """Read-only view (N, C, *kernel, *out) of the padded input's sliding windows."""
    n = len(kernel)
    spatial = xp.shape[-n:]
    out = [(size - (k - 1) * d - 1) // s + 1 for size, k, s, d in zip(spatial, kernel, strides, dilations)]
    if any(o <= 0 for o in out):
        raise ValueError(f"kernel {list(kernel)} (dilations {list(dilations)}) larger than the padded input {list(spatial)}")
    step = xp.strides[-n:]
    view = as_strided(xp, xp.shape[:-n] + tuple(kernel) + tuple(out),
                      xp.strides[:-n] + tuple(st * d for st, d in zip(step, dilations))
                      + tuple(st * s for st, s in zip(step, strides)), writeable=False, subok=True)
    return view, out


def _bias_shape(bias, n_spatial: int):
    return np.asarray(bias).reshape((-1,) + (1,) * n_spatial)


@kernel("conv")
def conv(op, x, weight, bias=None, strides=None, pad_type="valid", pad=None, dilations=None, groups=1):
    dtype = compute_dtype(x)
    x = x.astype(dtype, copy=False)
    weight = np.asarray(weight).astype(dtype, copy=False)
    n = x.ndim - 2
    kernel_shape = list(weight.shape[2:])
    strides = int_list(strides, n, 1)
    dilations = int_list(dilations, n, 1)
    eff = [(k - 1) * d + 1 for k, d in zip(kernel_shape, dilations)]
    pads = conv_pads(pad_type, pad, x.shape[2:], eff, strides)
    view, out = windows(pad_spatial(x, pads), kernel_shape, strides, dilations)
    batch, c_in = x.shape[:2]
    c_out = weight.shape[0]
    groups = int(groups)
    cig, cog = c_in // groups, c_out // groups
    positions = int(np.prod(out))
    if cig == 1 and groups > 1 and cog == 1:  # depthwise: a weighted sum over the window
        letters = "abc"[:n]
        y = np.einsum(f"nc{letters}...,c{letters}->nc...", view, weight[:, 0])
    elif cig == 1 and groups > 1:  # depthwise with a channel multiplier: one multiply-add per kernel tap
        w = weight.reshape(groups, cog, *kernel_shape)
        y = np.zeros((batch, groups, cog, *out), dtype=dtype)
        for tap in product(*(range(k) for k in kernel_shape)):
            taps = view[(slice(None), slice(None)) + tap]                    # (N, C, *out)
            y += w[(slice(None), slice(None)) + tap].reshape((1, groups, cog) + (1,) * n) * taps[:, :, None]
        y = y.reshape(batch, c_out, *out)
    else:
        cols = view.reshape(batch, groups, cig * int(np.prod(kernel_shape)), positions)
        y = np.matmul(weight.reshape(groups, cog, -1), cols).reshape(batch, c_out, *out)
    if bias is not None:
        y += _bias_shape(bias, n).astype(dtype)
    return y


def crop(y: np.ndarray, begins: list[int], sizes: list[int]) -> np.ndarray:
    """y[..., b:b+size] per spatial dim; positions outside y (b < 0 or past the end) are zeros."""
    n = len(begins)
    spatial = y.shape[-n:]
    before = [max(0, -b) for b in begins]
    after = [max(0, b + s - full) for b, s, full in zip(begins, sizes, spatial)]
    if any(before) or any(after):
        y = pad_spatial(y, [p for pair in zip(before, after) for p in pair])
        begins = [b + p for b, p in zip(begins, before)]
    return y[(Ellipsis,) + tuple(slice(b, b + s) for b, s in zip(begins, sizes))]


@kernel("conv_transpose")
def conv_transpose(op, x, weight, bias=None, pad=None, output_shape=None, pad_type="valid", strides=None,
                   dilations=None, groups=1):
    dtype = compute_dtype(x)
    x = x.astype(dtype, copy=False)
    weight = np.asarray(weight).astype(dtype, copy=False)
    n = x.ndim - 2
    batch, c_in = x.shape[:2]
    in_sizes = list(x.shape[2:])
    kernel_shape = list(weight.shape[2:])
    strides = int_list(strides, n, 1)
    dilations = int_list(dilations, n, 1)
    groups = int(groups)
    cig, cog = c_in // groups, weight.shape[1]
    c_out = cog * groups
    taps = int(np.prod(kernel_shape))
    full = [(d - 1) * s + (k - 1) * dl + 1 for d, s, k, dl in zip(in_sizes, strides, kernel_shape, dilations)]
    y = np.zeros((batch, c_out, *full), dtype=dtype)
    if cig == 1:  # depthwise: each output channel scales one input channel per tap
        w = weight.reshape(groups, cog, *kernel_shape)
        xg = x.reshape(batch, groups, 1, *in_sizes)
        contrib = None
    else:  # every input position's contribution to each (output channel, tap) in one matmul
        w = weight.reshape(groups, cig, cog * taps).transpose(0, 2, 1)
        contrib = np.matmul(w, x.reshape(batch, groups, cig, -1)).reshape(batch, c_out, *kernel_shape, *in_sizes)
    for tap in product(*(range(k) for k in kernel_shape)):
        target = (slice(None), slice(None)) + tuple(slice(t * dl, t * dl + s * (d - 1) + 1, s)
                                                    for t, dl, s, d in zip(tap, dilations, strides, in_sizes))
        if contrib is None:
            scale = w[(slice(None), slice(None)) + tap].reshape((1, groups, cog) + (1,) * n)
            y[target] += (xg * scale).reshape(batch, c_out, *in_sizes)
        else:
            y[target] += contrib[(slice(None), slice(None)) + tap]
    if pad_type == "custom":
        pads = int_list(pad, 2 * n, 0)
    elif pad_type == "valid":
        pads = [0] * (2 * n)
    elif pad_type in ("same", "same_lower"):
        pads = []
        for f, d, s in zip(full, in_sizes, strides):
            total = f - d * s
            small, big = total // 2, total - total // 2
            pads += [big, small] if pad_type == "same_lower" else [small, big]
    else:
        raise ValueError(f"unknown pad_type '{pad_type}'")
    begins = pads[0::2]
    if output_shape is not None:
        sizes = int_list(output_shape, n + 2, 0)[2:]
    else:
        sizes = [f - b - e for f, b, e in zip(full, pads[0::2], pads[1::2])]
    y = crop(y, begins, sizes)
    if bias is not None:
        y = y + _bias_shape(bias, n).astype(dtype)
    return y


# A specialization keeps a compute-dtype copy of a constant weight (fp32 of an fp16 weight) only up
# to this many elements; larger convs are dominated by their arithmetic and keep the kernel, which
# converts per call, so an fp16 program's memory does not grow by twice its weights.
MAX_CONVERTED_WEIGHT = 1 << 22


def plan_weight(weight, dtype):
    """``weight`` in ``dtype`` for a specialization, or None when the copy would be too large."""
    weight = np.asarray(weight)
    if weight.dtype != dtype and weight.size > MAX_CONVERTED_WEIGHT:
        return None
    return weight.astype(dtype, copy=False)


def _const_conv_args(static: dict, dynamic: list):
    """The single dynamic input of a conv whose weight (and bias) are constants, else None."""
    if [name for name, _ in dynamic] != ["x"] or static.get("weight") is None:
        return None
    spec = dynamic[0][1]
    if spec.scalar or spec.rank is None or spec.np_dtype is None or spec.np_dtype.kind not in "fiu":
        return None
    return spec


def _shape_cache(geometry):
    """geometry(shape) memoised per input shape (dynamic shapes stay correct)."""
    cache: dict = {}

    def get(shape):
        found = cache.get(shape)
        if found is None:
            found = cache[shape] = geometry(shape)
        return found

    return get


def _window_view(xp: np.ndarray, view_shape: tuple, kernel_steps: tuple, out_steps: tuple,
                 contiguous_strides: tuple) -> np.ndarray:
    """windows()'s view of ``xp`` with its shape (and, for a C-contiguous ``xp``, its strides)
    computed in advance."""
    if xp.flags.c_contiguous:
        return np.ndarray(view_shape, xp.dtype, xp, 0, contiguous_strides)
    strides = xp.strides
    n = len(kernel_steps)
    return as_strided(xp, view_shape, strides[:-n] + tuple(st * d for st, d in zip(strides[-n:], kernel_steps))
                      + tuple(st * s for st, s in zip(strides[-n:], out_steps)), writeable=False, subok=True)


def _padding(shape: tuple, pads: list):
    """(padded shape, index of the input inside it) for pad_spatial's zero padding, or None."""
    if not any(pads):
        return None
    n = len(pads) // 2
    lead = len(shape) - n
    padded = tuple(shape[:lead]) + tuple(d + pads[2 * i] + pads[2 * i + 1] for i, d in enumerate(shape[lead:]))
    return padded, (slice(None),) * lead + tuple(slice(pads[2 * i], pads[2 * i] + d) for i, d in enumerate(shape[lead:]))


@specialize("conv")
def conv_plan(op, static, dynamic):
    spec = _const_conv_args(static, dynamic)
    if spec is None:
        return None
    dtype = compute_dtype(np.empty(0, spec.np_dtype))
    weight = plan_weight(static["weight"], dtype)
    if weight is None or weight.ndim != spec.rank:
        return None
    bias = static.get("bias")
    n = spec.rank - 2
    kernel_shape = list(weight.shape[2:])
    strides = int_list(static.get("strides"), n, 1)
    dilations = int_list(static.get("dilations"), n, 1)
    eff = [(k - 1) * d + 1 for k, d in zip(kernel_shape, dilations)]
    groups = int(static.get("groups", 1))
    pad_type, pad = static.get("pad_type", "valid"), static.get("pad")
    c_out = weight.shape[0]
    bias = None if bias is None else _bias_shape(bias, n).astype(dtype)
    taps = int(np.prod(kernel_shape))
    itemsize = dtype.itemsize

    def geometry(shape):
        pads = conv_pads(pad_type, pad, shape[2:], eff, strides)
        spatial = [d + pads[2 * i] + pads[2 * i + 1] for i, d in enumerate(shape[2:])]
        out = [(size - (k - 1) * d - 1) // s + 1 for size, k, s, d in zip(spatial, kernel_shape, strides, dilations)]
        if any(o <= 0 for o in out):
            return None
        batch, c_in = shape[:2]
        view_shape = tuple(shape[:2]) + tuple(kernel_shape) + tuple(out)
        contiguous = [itemsize]
        for size in reversed([batch, c_in] + spatial):
            contiguous.insert(0, contiguous[0] * size)
        contiguous = contiguous[1:]  # C-contiguous strides of the padded input
        step = contiguous[-n:]
        view_strides = tuple(contiguous[:2]) + tuple(st * d for st, d in zip(step, dilations)) + \
            tuple(st * s for st, s in zip(step, strides))
        return _padding(shape, pads), view_shape, view_strides, batch, c_in, out, int(np.prod(out))

    get = _shape_cache(geometry)
    w_depthwise = weight[:, 0]
    letters = "abc"[:n]
    kernel_steps, out_steps = tuple(dilations), tuple(strides)

    def run(x):
        found = get(x.shape) if x.ndim == n + 2 else None
        if found is None or x.shape[1] != weight.shape[1] * groups:
            return conv(op, x, static["weight"], static.get("bias"), static.get("strides"), pad_type, pad,
                        static.get("dilations"), groups)
        padding, view_shape, view_strides, batch, c_in, out, positions = found
        x = x.astype(dtype, copy=False)
        if padding is not None:
            xp = np.zeros(padding[0], dtype=dtype)
            xp[padding[1]] = x
            x = xp
        view = _window_view(x, view_shape, kernel_steps, out_steps, view_strides)
        cig, cog = c_in // groups, c_out // groups
        if cig == 1 and groups > 1 and cog == 1:
            y = np.einsum(f"nc{letters}...,c{letters}->nc...", view, w_depthwise)
        elif cig == 1 and groups > 1:
            w = weight.reshape(groups, cog, *kernel_shape)
            y = np.zeros((batch, groups, cog, *out), dtype=dtype)
            for tap in product(*(range(k) for k in kernel_shape)):
                tap_view = view[(slice(None), slice(None)) + tap]
                y += w[(slice(None), slice(None)) + tap].reshape((1, groups, cog) + (1,) * n) * tap_view[:, :, None]
            y = y.reshape(batch, c_out, *out)
        else:
            cols = view.reshape(batch, groups, cig * taps, positions)
            y = np.matmul(weight.reshape(groups, cog, -1), cols).reshape(batch, c_out, *out)
        if bias is not None:
            y += bias
        return y

    return run


@specialize("conv_transpose")
def conv_transpose_plan(op, static, dynamic):
    spec = _const_conv_args(static, dynamic)
    if spec is None or static.get("output_shape") is not None:
        return None
    dtype = compute_dtype(np.empty(0, spec.np_dtype))
    weight = plan_weight(static["weight"], dtype)
    if weight is None or weight.ndim != spec.rank:
        return None
    n = spec.rank - 2
    kernel_shape = list(weight.shape[2:])
    strides = int_list(static.get("strides"), n, 1)
    dilations = int_list(static.get("dilations"), n, 1)
    groups = int(static.get("groups", 1))
    pad_type, pad = static.get("pad_type", "valid"), static.get("pad")
    if pad_type not in ("custom", "valid", "same", "same_lower"):
        return None
    cog = weight.shape[1]
    c_out = cog * groups
    taps = int(np.prod(kernel_shape))
    bias = static.get("bias")
    bias = None if bias is None else _bias_shape(bias, n).astype(dtype)
    tap_list = list(product(*(range(k) for k in kernel_shape)))
    tap_index = [(slice(None), slice(None)) + tap for tap in tap_list]
    if weight.shape[0] == groups:  # depthwise: every tap's products in one multiply (the same products)
        w_depthwise = weight.reshape((1, groups, cog) + tuple(kernel_shape) + (1,) * n)
    else:
        w_matrix = weight.reshape(groups, weight.shape[0] // groups, cog * taps).transpose(0, 2, 1)

    def geometry(shape):
        batch, c_in = shape[:2]
        in_sizes = list(shape[2:])
        full = [(d - 1) * s + (k - 1) * dl + 1 for d, s, k, dl in zip(in_sizes, strides, kernel_shape, dilations)]
        targets = [(slice(None), slice(None)) + tuple(slice(t * dl, t * dl + s * (d - 1) + 1, s)
                                                      for t, dl, s, d in zip(tap, dilations, strides, in_sizes))
                   for tap in tap_list]
        if pad_type == "custom":
            pads = int_list(pad, 2 * n, 0)
        elif pad_type == "valid":
            pads = [0] * (2 * n)
        else:
            pads = []
            for f, d, s in zip(full, in_sizes, strides):
                total = f - d * s
                small, big = total // 2, total - total // 2
                pads += [big, small] if pad_type == "same_lower" else [small, big]
        begins = pads[0::2]
        sizes = [f - b - e for f, b, e in zip(full, pads[0::2], pads[1::2])]
        if all(b >= 0 and b + size <= f for b, size, f in zip(begins, sizes, full)):  # crop() without padding
            begins, sizes = (Ellipsis,) + tuple(slice(b, b + size) for b, size in zip(begins, sizes)), None
        return batch, c_in, in_sizes, (batch, c_out, *full), targets, begins, sizes

    get = _shape_cache(geometry)

    def run(x):
        if x.ndim != n + 2 or x.shape[1] != weight.shape[0] or weight.shape[0] % groups:
            return conv_transpose(op, x, static["weight"], static.get("bias"), pad, None, pad_type,
                                  static.get("strides"), static.get("dilations"), groups)
        batch, c_in, in_sizes, full_shape, targets, begins, sizes = get(x.shape)
        x = x.astype(dtype, copy=False)
        y = np.zeros(full_shape, dtype=dtype)
        if c_in == groups:
            contrib = (x.reshape((batch, groups, 1) + (1,) * n + tuple(in_sizes)) * w_depthwise).reshape(
                batch, c_out, *kernel_shape, *in_sizes)
        else:
            contrib = np.matmul(w_matrix, x.reshape(batch, groups, c_in // groups, -1)).reshape(
                batch, c_out, *kernel_shape, *in_sizes)
        for target, index in zip(targets, tap_index):
            view = y[target]  # in place: ``y[target] += …`` would copy the sum back onto itself
            view += contrib[index]
        y = y[begins] if sizes is None else crop(y, begins, sizes)
        if bias is not None:
            y = y + bias
        return y

    return run
