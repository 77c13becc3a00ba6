"""MIL tensor transformations (iOS15-iOS18 tensor_transformation.py): reshapes, slices, permutes
and block rearrangements. Slices follow numpy semantics, as MIL's ``slice_by_index`` does.
Specializations resolve the target shape, axes or index tuple once when their operands are
constants and the input's rank (or shape) is known.

``depth_to_space``/``space_to_depth`` use the DCR order (TensorFlow's); ``pixel_shuffle`` and
``pixel_unshuffle`` the CRD order (PyTorch's).
"""
from __future__ import annotations

import numpy as np

from .registry import kernel, specialize


def _ints(v):
    return [int(i) for i in np.atleast_1d(v)]


@kernel("reshape")
def reshape(op, x, shape):
    x = np.asarray(x)
    shape = _ints(shape)
    offset = len(shape) - x.ndim  # a 0 copies the dim of x aligned from the right (iOS17), else 1
    resolved = []
    for i, s in enumerate(shape):
        if s == 0:
            resolved.append(x.shape[i - offset] if 0 <= i - offset < x.ndim else 1)
        else:
            resolved.append(s)
    return x.reshape(resolved)


@kernel("reshape_like")
def reshape_like(op, x, ref_tensors, begins, ends, end_masks):
    shape: list[int] = []
    for ref, begin, end, end_mask in zip(ref_tensors, begins, ends, end_masks):
        dims = np.shape(ref)
        shape.extend(dims[int(begin):] if end_mask else dims[int(begin):int(end)])
    return np.asarray(x).reshape(shape)


@kernel("expand_dims")
def expand_dims(op, x, axes):
    x = np.asarray(x)
    out_rank = x.ndim + len(_ints(axes))
    return np.expand_dims(x, tuple(sorted(a % out_rank for a in _ints(axes))))


@kernel("squeeze")
def squeeze(op, x, axes=None):
    x = np.asarray(x)
    if axes is None:
        return np.squeeze(x)
    # non-single dims named in axes are left in place (PyTorch semantics, per the MIL spec)
    drop = tuple(a % x.ndim for a in _ints(axes) if x.shape[a % x.ndim] == 1)
    return np.squeeze(x, axis=drop)


@kernel("transpose")
def transpose(op, x, perm):
    return np.transpose(np.asarray(x), _ints(perm))


@kernel("reverse")
def reverse(op, x, axes=None):
    x = np.asarray(x)
    return np.flip(x, axis=None if axes is None else tuple(_ints(axes)))


@kernel("reverse_sequence")
def reverse_sequence(op, x, lengths, seq_axis=0, batch_axis=0):
    x = np.asarray(x)
    seq_axis, batch_axis = int(seq_axis) % x.ndim, int(batch_axis) % x.ndim
    out = x.copy()
    for b, length in enumerate(_ints(lengths)):
        src = [slice(None)] * x.ndim
        src[batch_axis] = b
        src[seq_axis] = slice(0, length)
        dst = list(src)
        dst[seq_axis] = slice(length - 1, None, -1) if length > 0 else slice(0, 0)
        out[tuple(src)] = x[tuple(dst)]
    return out


def _index_slices(shape, begin, end, stride, begin_mask, end_mask, squeeze_mask):
    """numpy slices (ints on squeezed axes) for slice_by_index / slice_update."""
    rank = len(shape)
    begin, end = _ints(begin), _ints(end)
    stride = _ints(stride) if stride is not None else [1] * rank
    begin_mask = list(np.atleast_1d(begin_mask)) if begin_mask is not None else [False] * rank
    end_mask = list(np.atleast_1d(end_mask)) if end_mask is not None else [False] * rank
    squeeze_mask = list(np.atleast_1d(squeeze_mask)) if squeeze_mask is not None else [False] * rank
    index = []
    for i in range(rank):
        start = None if begin_mask[i] else begin[i]
        if squeeze_mask[i]:
            index.append(0 if start is None else start)
            continue
        index.append(slice(start, None if end_mask[i] else end[i], stride[i]))
    return tuple(index)


@kernel("slice_by_index")
def slice_by_index(op, x, begin, end, stride=None, begin_mask=None, end_mask=None, squeeze_mask=None):
    x = np.asarray(x)
    return np.asarray(x[_index_slices(x.shape, begin, end, stride, begin_mask, end_mask, squeeze_mask)])


@kernel("slice_update")
def slice_update(op, x, update, begin, end, stride=None, begin_mask=None, end_mask=None,
                 squeeze_mask=None):
    out = np.array(x, copy=True)
    out[_index_slices(out.shape, begin, end, stride, begin_mask, end_mask, squeeze_mask)] = update
    return out


@kernel("slice_by_size")
def slice_by_size(op, x, begin, size):
    x = np.asarray(x)
    index = []
    for b, s, d in zip(_ints(begin), _ints(size), x.shape):
        b = b % d if d else 0
        index.append(slice(b, d if s == -1 else b + s))
    return x[tuple(index)]


@kernel("depth_to_space")
def depth_to_space(op, x, block_size):
    n, c, h, w = np.shape(x)
    b = int(block_size)
    y = np.reshape(x, (n, b, b, c // (b * b), h, w)).transpose(0, 3, 4, 1, 5, 2)
    return y.reshape(n, c // (b * b), h * b, w * b)


@kernel("space_to_depth")
def space_to_depth(op, x, block_size):
    n, c, h, w = np.shape(x)
    b = int(block_size)
    y = np.reshape(x, (n, c, h // b, b, w // b, b)).transpose(0, 3, 5, 1, 2, 4)
    return y.reshape(n, c * b * b, h // b, w // b)


@kernel("pixel_shuffle")
def pixel_shuffle(op, x, upscale_factor):
    n, c, h, w = np.shape(x)
    f = int(upscale_factor)
    y = np.reshape(x, (n, c // (f * f), f, f, h, w)).transpose(0, 1, 4, 2, 5, 3)
    return y.reshape(n, c // (f * f), h * f, w * f)


@kernel("pixel_unshuffle")
def pixel_unshuffle(op, x, downscale_factor):
    n, c, h, w = np.shape(x)
    f = int(downscale_factor)
    y = np.reshape(x, (n, c, h // f, f, w // f, f)).transpose(0, 1, 3, 5, 2, 4)
    return y.reshape(n, c * f * f, h // f, w // f)


@kernel("space_to_batch")
def space_to_batch(op, x, block_shape, paddings):
    x = np.asarray(x)
    bh, bw = _ints(block_shape)
    (pt, pb), (pl, pr) = np.asarray(paddings).astype(int).tolist()
    x = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    n, c, h, w = x.shape
    y = x.reshape(n, c, h // bh, bh, w // bw, bw).transpose(3, 5, 0, 1, 2, 4)
    return y.reshape(n * bh * bw, c, h // bh, w // bw)


@kernel("batch_to_space")
def batch_to_space(op, x, block_shape, crops):
    x = np.asarray(x)
    bh, bw = _ints(block_shape)
    (ct, cb), (cl, cr) = np.asarray(crops).astype(int).tolist()
    n, c, h, w = x.shape
    y = x.reshape(bh, bw, n // (bh * bw), c, h, w).transpose(2, 3, 4, 0, 5, 1)
    y = y.reshape(n // (bh * bw), c, h * bh, w * bw)
    return y[:, :, ct:h * bh - cb, cl:w * bw - cr]


@kernel("sliding_windows")
def sliding_windows(op, x, axis, size, stride=1):
    x = np.asarray(x)
    axis, size, stride = int(axis) % x.ndim, int(size), int(stride)
    count = (x.shape[axis] - size) // stride + 1
    windows = [np.take(x, np.arange(i * stride, i * stride + size), axis=axis) for i in range(count)]
    return np.stack(windows, axis=axis)


def _tensor_x(static: dict, dynamic: list, *needed: str):
    """The spec of ``x`` when it is the only dynamic input, a tensor, and ``needed`` are constants."""
    if [name for name, _ in dynamic] != ["x"] or any(static.get(name) is None for name in needed):
        return None
    spec = dynamic[0][1]
    return None if spec.scalar or spec.rank is None or spec.np_dtype is None else spec


def _method_call(name: str, argument):
    """``run(x) = x.<name>(argument)``, saying so in ``run.method`` (the planner may then call the
    array method in place of ``run``)."""
    method = getattr(np.ndarray, name)

    def run(x):
        return method(x, argument)

    run.method = (name, argument)
    return run


@specialize("reshape")
def reshape_plan(op, static, dynamic):
    spec = _tensor_x(static, dynamic, "shape")
    shape = _ints(static["shape"]) if spec is not None else None
    if spec is None or 0 in shape:
        return None
    return _method_call("reshape", shape)


@specialize("expand_dims")
def expand_dims_plan(op, static, dynamic):
    spec = _tensor_x(static, dynamic, "axes")
    if spec is None or spec.shape is None:
        return None
    shape = np.expand_dims(np.empty(spec.shape, dtype=np.bool_), tuple(sorted(
        a % (spec.rank + len(_ints(static["axes"]))) for a in _ints(static["axes"])))).shape
    return lambda x: x.reshape(shape) if x.shape == spec.shape else expand_dims(op, x, static["axes"])


@specialize("squeeze")
def squeeze_plan(op, static, dynamic):
    spec = _tensor_x(static, dynamic, "axes")
    if spec is None or spec.shape is None:
        return None
    drop = tuple(a % spec.rank for a in _ints(static["axes"]) if spec.shape[a % spec.rank] == 1)
    return lambda x: x.squeeze(drop) if x.shape == spec.shape else squeeze(op, x, static["axes"])


@specialize("transpose")
def transpose_plan(op, static, dynamic):
    spec = _tensor_x(static, dynamic, "perm")
    if spec is None:
        return None
    perm = _ints(static["perm"])
    return _method_call("transpose", perm)


@specialize("slice_by_index")
def slice_by_index_plan(op, static, dynamic):
    spec = _tensor_x(static, dynamic, "begin", "end")
    if spec is None:
        return None
    index = _index_slices((None,) * spec.rank, static["begin"], static["end"], static.get("stride"),
                          static.get("begin_mask"), static.get("end_mask"), static.get("squeeze_mask"))
    return lambda x: np.asarray(x[index])
