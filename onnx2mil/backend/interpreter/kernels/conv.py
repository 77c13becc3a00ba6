"""conv and conv_transpose, 1-D to 3-D, every pad type, groups, dilations, output_shape.

Each is one matmul per group, whatever the groups (depthwise included). conv: the strided window
view of the padded input copied to columns (im2col), times the weight matrix. conv_transpose, in
polyphase form: the input padded by the kernel's reach, its stride-1 windows copied to columns,
times the taps rearranged by (output phase, window offset); the phases are interleaved into the
output, then the crop the pads ask for. Loops run over kernel taps only to arrange the weights,
never over elements. fp16 inputs are computed in fp32 (the executor rounds the result back to
fp16).

The kernels build their matrices (``Convolution``, ``TransposedConv``) per call; the
specializations (constant weight and bias, the usual case) build them once per op and the
per-input-shape geometry once per shape, then run the same ``__call__``.
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


def _bias_shape(bias, n_spatial: int):
    return np.asarray(bias).reshape((-1,) + (1,) * n_spatial)


class Convolution:
    """conv as one matmul per group over the windows of the padded input (im2col): the window
    view (N, C, *kernel, *out) copied to (N, groups, C/groups * taps, positions), times the
    (output channels, C/groups * taps) weight matrix of each group. Depthwise convs are the same
    matmul with one row per group (numpy's einsum and per-tap loops were slower at every size).

    The kernel builds one per call, the specialization once per op; both run ``__call__``.
    """

    def __init__(self, weight: np.ndarray, strides: list, dilations: list, groups: int):
        self.kernel_shape = list(weight.shape[2:])
        self.strides, self.dilations, self.groups = list(strides), list(dilations), groups
        self.c_out = weight.shape[0]
        self.matrix = weight.reshape(groups, self.c_out // groups, -1)
        self.effective = [(k - 1) * d + 1 for k, d in zip(self.kernel_shape, dilations)]

    def geometry(self, shape: tuple, itemsize: int, pad_type: str, pad):
        """Everything ``__call__`` needs for an input of ``shape``; ValueError if the kernel does not
        fit in the padded input."""
        n = len(self.kernel_shape)
        pads = conv_pads(pad_type, pad, shape[2:], self.effective, self.strides)
        spatial = [d + pads[2 * i] + pads[2 * i + 1] for i, d in enumerate(shape[2:])]
        out = [(size - e) // s + 1 for size, e, s in zip(spatial, self.effective, self.strides)]
        if any(o <= 0 for o in out):
            raise ValueError(f"kernel {self.kernel_shape} (dilations {self.dilations}) larger than the padded "
                             f"input {spatial}")
        batch, c_in = shape[:2]
        view_shape = (batch, c_in) + tuple(self.kernel_shape) + tuple(out)
        contiguous = [itemsize]
        for size in reversed([batch, c_in] + spatial):
            contiguous.insert(0, contiguous[0] * size)
        step = contiguous[1:][-n:]  # C-contiguous strides of the padded input's spatial dims
        view_strides = tuple(contiguous[1:3]) + tuple(st * d for st, d in zip(step, self.dilations)) + \
            tuple(st * s for st, s in zip(step, self.strides))
        cols = (batch, self.groups, c_in // self.groups * int(np.prod(self.kernel_shape)), int(np.prod(out)))
        return _padding(shape, pads), view_shape, view_strides, cols, (batch, self.c_out, *out)

    def __call__(self, x: np.ndarray, geometry) -> np.ndarray:
        padding, view_shape, view_strides, cols, out = geometry
        if padding is not None:
            xp = np.zeros(padding[0], dtype=x.dtype)
            xp[padding[1]] = x
            x = xp
        # A contiguous copy (a strided view would make matmul take its slow non-BLAS loop)
        columns = np.ascontiguousarray(_window_view(x, view_shape, self.dilations, self.strides, view_strides))
        if cols[0] == 1 and self.groups == 1:  # one 2-D product: np.dot skips matmul's broadcasting loop
            return np.dot(self.matrix[0], columns.reshape(cols[2:])).reshape(out)
        return np.matmul(self.matrix, columns.reshape(cols)).reshape(out)


@kernel("conv")
def conv(op, x, weight, bias=None, strides=None, pad_type="valid", pad=None, dilations=None, groups=1):
    dtype = compute_dtype(x)
    x = x.astype(dtype, copy=False)
    weight = np.asarray(weight).astype(dtype, copy=False)
    n = x.ndim - 2
    convolution = Convolution(weight, int_list(strides, n, 1), int_list(dilations, n, 1), int(groups))
    y = convolution(x, convolution.geometry(x.shape, dtype.itemsize, pad_type, pad))
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


def transposed_pads(pad_type: str, pad, full, in_sizes, strides) -> list[int]:
    """conv_transpose's [begin, end] crop per spatial dim of the full output."""
    n = len(full)
    if pad_type == "custom":
        return int_list(pad, 2 * n, 0)
    if pad_type == "valid":
        return [0] * (2 * n)
    if pad_type in ("same", "same_lower"):
        pads = []
        for f, d, s in zip(full, in_sizes, strides):
            total = f - d * s
            small, big = total // 2, total - total // 2
            pads += [big, small] if pad_type == "same_lower" else [small, big]
        return pads
    raise ValueError(f"unknown pad_type '{pad_type}'")


class TransposedConv:
    """conv_transpose as one matmul per group over windows of the input (polyphase form).

    Per spatial dim, kernel tap t lands t * dilation = stride * q + r positions after its input
    position: output s*m + r sums x[m - q] * w[t] over the taps of phase r. So the input, padded
    by ``reach`` = max q zeros on each side, is read in windows of reach + 1 positions (one per m),
    and one matrix of the taps rearranged by (phase, window offset) gives every phase of every
    output position. Output positions past the full size (stride * windows >= full) read only
    padding, so they are zeros, as the crop's own padding would be.

    The kernel builds one per call, the specialization once per op; both run ``__call__``.
    """

    def __init__(self, weight: np.ndarray, strides: list, dilations: list, groups: int):
        c_in, cog = weight.shape[:2]
        self.kernel_shape = list(weight.shape[2:])
        self.strides, self.dilations, self.groups = list(strides), list(dilations), groups
        self.c_out = cog * groups
        cig = c_in // groups
        self.reach = [((k - 1) * d) // s for k, s, d in zip(self.kernel_shape, strides, dilations)]
        window = [q + 1 for q in self.reach]
        phases, positions = int(np.prod(strides)), int(np.prod(window))
        grouped = weight.reshape(groups, cig, cog, *self.kernel_shape)
        # One output channel per group: (positions, window) @ (window, phases) gives the phases of
        # each position side by side, already interleaved in 1-D. Otherwise (channel, phase) rows.
        self.phases_last = cog == 1
        if self.phases_last:
            matrix = np.zeros((groups, cig, *window, *strides), weight.dtype)
        else:
            matrix = np.zeros((groups, cog, *strides, cig, *window), weight.dtype)
        for tap in product(*(range(k) for k in self.kernel_shape)):
            offsets = [t * d for t, d in zip(tap, dilations)]
            at = tuple(q - o // s for q, o, s in zip(self.reach, offsets, strides))  # window offset
            phase = tuple(o % s for o, s in zip(offsets, strides))
            taps = grouped[(slice(None),) * 3 + tap]  # (groups, cig, cog)
            if self.phases_last:
                matrix[(slice(None),) * 2 + at + phase] = taps[:, :, 0]
            else:
                matrix[(slice(None),) * 2 + phase + (slice(None),) + at] = taps.swapaxes(1, 2)
        self.matrix = matrix.reshape((groups, cig * positions, phases) if self.phases_last
                                     else (groups, cog * phases, cig * positions))
        self.window = window

    def geometry(self, shape: tuple, itemsize: int, pad_type: str, pad, output_shape=None):
        """Everything ``__call__`` needs for an input of ``shape``: padding, window view, matmul
        and interleave shapes, the crop."""
        n = len(self.kernel_shape)
        batch, c_in = shape[:2]
        in_sizes = list(shape[2:])
        padded = (batch, c_in) + tuple(d + 2 * q for d, q in zip(in_sizes, self.reach))
        inner = (slice(None), slice(None)) + tuple(slice(q, q + d) for q, d in zip(self.reach, in_sizes))
        windows_out = [d + q for d, q in zip(in_sizes, self.reach)]
        contiguous = [itemsize]
        for size in reversed(padded):
            contiguous.insert(0, contiguous[0] * size)
        contiguous = contiguous[1:]
        view = ((batch, c_in) + tuple(self.window) + tuple(windows_out),
                tuple(contiguous[:2]) + tuple(contiguous[2:]) * 2)
        cols = (batch, self.groups, c_in // self.groups * int(np.prod(self.window)), int(np.prod(windows_out)))
        if self.phases_last:
            split = (batch, self.c_out) + tuple(windows_out) + tuple(self.strides)
            interleave = (0, 1) + tuple(a for i in range(n) for a in (2 + i, 2 + n + i))
        else:
            split = (batch, self.c_out) + tuple(self.strides) + tuple(windows_out)
            interleave = (0, 1) + tuple(a for i in range(n) for a in (2 + n + i, 2 + i))
        out = (batch, self.c_out) + tuple(m * s for m, s in zip(windows_out, self.strides))
        full = [(d - 1) * s + (k - 1) * dl + 1
                for d, s, k, dl in zip(in_sizes, self.strides, self.kernel_shape, self.dilations)]
        pads = transposed_pads(pad_type, pad, full, in_sizes, self.strides)
        begins = pads[0::2]
        if output_shape is not None:
            sizes = int_list(output_shape, n + 2, 0)[2:]
        else:
            sizes = [f - b - e for f, b, e in zip(full, pads[0::2], pads[1::2])]
        if all(b >= 0 and b + size <= o for b, size, o in zip(begins, sizes, out[2:])):
            begins, sizes = (Ellipsis,) + tuple(slice(b, b + size) for b, size in zip(begins, sizes)), None
        return padded, inner, view, cols, split, interleave, out, begins, sizes

    def __call__(self, x: np.ndarray, geometry) -> np.ndarray:
        padded, inner, view, cols, split, interleave, out, begins, sizes = geometry
        xp = np.zeros(padded, dtype=x.dtype)
        xp[inner] = x
        columns = np.ascontiguousarray(np.ndarray(view[0], x.dtype, xp, 0, view[1])).reshape(cols)
        if self.phases_last:
            y = np.matmul(columns.swapaxes(-1, -2), self.matrix)
        elif cols[0] == 1 and self.groups == 1:
            y = np.dot(self.matrix[0], columns.reshape(cols[2:]))
        else:
            y = np.matmul(self.matrix, columns)
        y = y.reshape(split).transpose(interleave).reshape(out)
        return y[begins] if sizes is None else crop(y, begins, sizes)


@kernel("conv_transpose")
def conv_transpose(op, x, weight, bias=None, pad=None, output_shape=None, pad_type="valid", strides=None,
                   dilations=None, groups=1):
    dtype = compute_dtype(x)
    x = x.astype(dtype, copy=False)
    weight = np.asarray(weight).astype(dtype, copy=False)
    n = x.ndim - 2
    transposed = TransposedConv(weight, int_list(strides, n, 1), int_list(dilations, n, 1), int(groups))
    y = transposed(x, transposed.geometry(x.shape, dtype.itemsize, pad_type, pad, output_shape))
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
    """Read-only view (N, C, *kernel, *out) of the padded input's sliding windows, its shape (and,
    for a C-contiguous ``xp``, its strides) computed in advance."""
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
    groups = int(static.get("groups", 1))
    if weight is None or weight.ndim != spec.rank or weight.shape[0] % groups:
        return None
    n = spec.rank - 2
    pad_type, pad = static.get("pad_type", "valid"), static.get("pad")
    if pad_type not in ("custom", "valid", "same", "same_lower"):
        return None
    convolution = Convolution(weight, int_list(static.get("strides"), n, 1), int_list(static.get("dilations"), n, 1),
                              groups)
    bias = static.get("bias")
    bias = None if bias is None else _bias_shape(bias, n).astype(dtype)
    get = _shape_cache(lambda shape: convolution.geometry(shape, dtype.itemsize, pad_type, pad))

    def run(x):
        if x.ndim != n + 2 or x.shape[1] != weight.shape[1] * groups:
            return conv(op, x, static["weight"], static.get("bias"), static.get("strides"), pad_type, pad,
                        static.get("dilations"), groups)
        y = convolution(x.astype(dtype, copy=False), get(x.shape))
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
    # The polyphase matrix is a rearranged copy of the weight: a large one is built per call (a
    # 1/positions share of the matmul's work) so that a program does not hold its largest weights twice.
    if weight is None or weight.ndim != spec.rank or weight.size > MAX_CONVERTED_WEIGHT:
        return None
    n = spec.rank - 2
    groups = int(static.get("groups", 1))
    pad_type, pad = static.get("pad_type", "valid"), static.get("pad")
    if pad_type not in ("custom", "valid", "same", "same_lower") or weight.shape[0] % groups:
        return None
    transposed = TransposedConv(weight, int_list(static.get("strides"), n, 1), int_list(static.get("dilations"), n, 1),
                                groups)
    bias = static.get("bias")
    bias = None if bias is None else _bias_shape(bias, n).astype(dtype)
    get = _shape_cache(lambda shape: transposed.geometry(shape, dtype.itemsize, pad_type, pad))

    def run(x):
        if x.ndim != n + 2 or x.shape[1] != weight.shape[0]:
            return conv_transpose(op, x, static["weight"], static.get("bias"), pad, None, pad_type,
                                  static.get("strides"), static.get("dilations"), groups)
        y = transposed(x.astype(dtype, copy=False), get(x.shape))
        if bias is not None:
            y = y + bias
        return y

    return run
