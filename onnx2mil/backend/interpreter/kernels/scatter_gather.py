"""MIL gather/scatter (iOS15-iOS17 scatter_gather.py), with ``batch_dims`` (iOS16+) and
``validate_indices`` (iOS17+).

Before iOS17 negative indices count from the end; the iOS17 ops (those with ``validate_indices``)
take negatives as out of bounds. With ``validate_indices`` an out-of-bounds index raises
``IndexError``; without it the result is undefined but memory safe in MIL: gathers read 0 there,
scatters skip it.
"""
from __future__ import annotations

import itertools

import numpy as np

from .registry import kernel

_SCATTER_UFUNCS = {
    "add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide,
    "max": np.maximum, "min": np.minimum,
}


def _wide(x):
    x = np.asarray(x)
    return x.astype(np.float32) if x.dtype == np.float16 else x


def _resolve(op, indices, size, validate_indices):
    """Indices wrapped into [0, size) and a mask of those in bounds."""
    indices = np.asarray(indices).astype(np.int64)
    if validate_indices and np.any((indices < 0) | (indices >= size)):
        raise IndexError(f"{op.op_type} '{op.name}': indices out of bounds [0, {size}) with validate_indices")
    lowest = 0 if "validate_indices" in op.input_spec.input_types else -size
    valid = (indices >= lowest) & (indices < size)
    return np.where(indices < 0, indices + size, indices) * valid, valid


def _gather_one(op, x, indices, axis, validate_indices):
    idx, valid = _resolve(op, indices, x.shape[axis], validate_indices)
    out = np.take(x, idx, axis=axis)
    if valid.all():
        return out
    mask = valid.reshape((1,) * axis + valid.shape + (1,) * (x.ndim - axis - 1))
    return np.where(mask, out, np.zeros((), out.dtype))


@kernel("gather")
def gather(op, x, indices, axis=0, batch_dims=0, validate_indices=False):
    x, indices = np.asarray(x), np.asarray(indices)
    axis, batch_dims = int(axis) % x.ndim, int(batch_dims)
    if batch_dims < 0:
        batch_dims += indices.ndim
    if batch_dims == 0:
        return _gather_one(op, x, indices, axis, validate_indices)
    batch_shape = x.shape[:batch_dims]
    parts = [_gather_one(op, x[b], indices[b], axis - batch_dims, validate_indices)
             for b in itertools.product(*map(range, batch_shape))]
    return np.stack(parts).reshape(batch_shape + parts[0].shape)


def _gather_nd_one(op, x, indices, validate_indices):
    depth = indices.shape[-1]
    flat = indices.reshape(-1, depth)
    columns, valid = [], np.ones(flat.shape[0], bool)
    for d in range(depth):
        idx, ok = _resolve(op, flat[:, d], x.shape[d], validate_indices)
        columns.append(idx)
        valid &= ok
    out = x[tuple(columns)]
    out = np.where(valid.reshape((-1,) + (1,) * (out.ndim - 1)), out, np.zeros((), out.dtype))
    return out.reshape(indices.shape[:-1] + x.shape[depth:])


@kernel("gather_nd")
def gather_nd(op, x, indices, batch_dims=0, validate_indices=False):
    x, indices = np.asarray(x), np.asarray(indices).astype(np.int64)
    batch_dims = int(batch_dims)
    if batch_dims == 0:
        return _gather_nd_one(op, x, indices, validate_indices)
    batch_shape = x.shape[:batch_dims]
    parts = [_gather_nd_one(op, x[b], indices[b], validate_indices)
             for b in itertools.product(*map(range, batch_shape))]
    return np.stack(parts).reshape(batch_shape + parts[0].shape)


@kernel("gather_along_axis")
def gather_along_axis(op, x, indices, axis=0, validate_indices=False):
    x = np.asarray(x)
    axis = int(axis) % x.ndim
    idx, valid = _resolve(op, indices, x.shape[axis], validate_indices)
    out = np.take_along_axis(x, idx, axis=axis)
    return np.where(valid, out, np.zeros((), out.dtype))


def _apply(mode, op, data, index, updates):
    """data[index] <mode>= updates for an advanced index whose entries may repeat."""
    if mode == "update":
        data[index] = updates  # numpy writes repeated indices in order: the last update wins
        return
    if mode not in _SCATTER_UFUNCS:
        raise ValueError(f"{op.op_type} '{op.name}': mode '{mode}' is not a MIL scatter mode")
    with np.errstate(all="ignore"):
        _SCATTER_UFUNCS[mode].at(data, index, updates)


@kernel("scatter")
def scatter(op, data, indices, updates, axis=0, mode="update", validate_indices=False):
    out = _wide(data).copy()
    axis = int(axis) % out.ndim
    idx, valid = _resolve(op, np.atleast_1d(indices), out.shape[axis], validate_indices)
    moved = np.moveaxis(out, axis, 0)
    _apply(mode, op, moved, idx[valid], np.moveaxis(_wide(updates), axis, 0)[valid])
    return out


@kernel("scatter_along_axis")
def scatter_along_axis(op, data, indices, updates, axis=0, mode="add", validate_indices=False):
    out = _wide(data).copy()
    axis = int(axis) % out.ndim
    idx, valid = _resolve(op, indices, out.shape[axis], validate_indices)
    grid = list(np.indices(idx.shape, sparse=False))
    grid[axis] = idx
    index = tuple(g[valid] for g in grid)
    _apply(mode, op, out, index, _wide(updates)[valid])
    return out


@kernel("scatter_nd")
def scatter_nd(op, data, indices, updates, mode="add", validate_indices=False):
    out = _wide(data).copy()
    indices = np.asarray(indices).astype(np.int64)
    depth = indices.shape[-1]
    flat = indices.reshape(-1, depth)
    columns, valid = [], np.ones(flat.shape[0], bool)
    for d in range(depth):
        idx, ok = _resolve(op, flat[:, d], out.shape[d], validate_indices)
        columns.append(idx)
        valid &= ok
    flat_updates = _wide(updates).reshape((flat.shape[0],) + out.shape[depth:])
    _apply(mode, op, out, tuple(c[valid] for c in columns), flat_updates[valid])
    return out
