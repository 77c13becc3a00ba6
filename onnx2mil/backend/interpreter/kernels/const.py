"""const and the constexpr_* ops (iOS16 affine/LUT/sparse/cast, iOS18 blockwise/LUT/sparse and
their sparse-to-sparse forms).

The executor evaluates these once, when it plans the program; each kernel rebuilds the dense
tensor from its compressed form as the op's docstring in coremltools' defs describes.
"""
from __future__ import annotations

import numpy as np
from coremltools.converters.mil.mil import types

from .registry import kernel


@kernel("const")
def const(op):
    return op.outputs[0].val


def _along_axis(param: np.ndarray, rank: int, axis: int) -> np.ndarray:
    """A scalar or a vector of the size of ``axis``, shaped to broadcast against a rank-``rank`` tensor."""
    param = np.asarray(param)
    if param.ndim == 0:
        return param
    shape = [1] * rank
    shape[axis] = param.size
    return param.reshape(shape)


@kernel("constexpr_affine_dequantize")
def constexpr_affine_dequantize(op, quantized_data, zero_point, scale, axis):
    rank = quantized_data.ndim
    axis = axis % rank
    data = quantized_data.astype(np.float32)
    zero = _along_axis(np.asarray(zero_point, dtype=np.float32), rank, axis)
    return _along_axis(np.asarray(scale, dtype=np.float32), rank, axis) * (data - zero)


@kernel("constexpr_cast")
def constexpr_cast(op, source_val, output_dtype):
    return np.asarray(source_val).astype(types.nptype_from_builtin(types.string_to_builtin(output_dtype)))


def _unpack_bits(packed: np.ndarray, nbits: int, count: int) -> np.ndarray:
    """``count`` unsigned ``nbits``-bit values packed LSB first, one byte after another."""
    bits = np.unpackbits(np.asarray(packed, dtype=np.uint8), bitorder="little")[: nbits * count]
    weights = (1 << np.arange(nbits)).astype(np.int64)
    return bits.reshape(count, nbits).astype(np.int64) @ weights


def _repeat_blocks(param: np.ndarray, shape: tuple) -> np.ndarray:
    """Expand a per-block parameter to ``shape``: each entry covers shape[i] / param.shape[i] items."""
    for axis, (n, size) in enumerate(zip(param.shape, shape)):
        if size % n:
            raise ValueError(f"block parameter dim {axis} ({n}) does not divide the data dim ({size})")
        if n != size:
            param = np.repeat(param, size // n, axis=axis)
    return param


def lut_to_dense_ios18(indices, lut, vector_axis=None) -> np.ndarray:
    """iOS18 palettization: lut is [groups per index dim..., NUM_PALETTES, VECTOR_SIZE]; a vector
    entry fills VECTOR_SIZE consecutive positions along ``vector_axis``."""
    indices = np.asarray(indices).astype(np.int64)
    rank = indices.ndim
    group_index = []
    for axis in range(rank):
        block = indices.shape[axis] // lut.shape[axis]
        shape_b = [1] * rank
        shape_b[axis] = indices.shape[axis]
        group_index.append((np.arange(indices.shape[axis]) // block).reshape(shape_b))
    values = lut[tuple(group_index) + (indices,)]          # indices.shape + (VECTOR_SIZE,)
    vector_size = lut.shape[-1]
    if vector_size == 1:
        return values[..., 0]
    axis = int(vector_axis) % rank
    values = np.moveaxis(values, -1, axis + 1)
    out_shape = list(indices.shape)
    out_shape[axis] *= vector_size
    return values.reshape(out_shape)


@kernel("constexpr_lut_to_dense")
def constexpr_lut_to_dense(op, indices, lut, shape=None, vector_axis=None):
    if shape is not None:  # iOS16: flat LUT, indices packed into bytes
        shape = tuple(int(s) for s in np.asarray(shape).reshape(-1))
        count = int(np.prod(shape))
        nbits = int(np.log2(lut.size))
        return lut[_unpack_bits(indices, nbits, count)].reshape(shape)
    return lut_to_dense_ios18(indices, lut, vector_axis)


def _scatter(mask: np.ndarray, nonzero) -> np.ndarray:
    """The dense tensor of ``mask``'s shape holding ``nonzero`` at the set positions (row-major)."""
    dense = np.zeros(mask.shape, dtype=np.asarray(nonzero).dtype)
    dense[mask != 0] = nonzero
    return dense


@kernel("constexpr_lut_to_sparse")
def constexpr_lut_to_sparse(op, indices_mask, indices_nonzero_data, lut, vector_axis=None):
    """(mask, nonzero values) of the palettized sparse tensor; a vector palette widens the mask
    along ``vector_axis``."""
    mask = np.asarray(indices_mask)
    dense = lut_to_dense_ios18(_scatter(mask, indices_nonzero_data), lut, vector_axis)
    vector_size = lut.shape[-1]
    if vector_size > 1:
        mask = np.repeat(mask, vector_size, axis=int(vector_axis) % mask.ndim)
    return mask, dense[mask != 0]


@kernel("constexpr_sparse_to_dense")
def constexpr_sparse_to_dense(op, nonzero_data, mask, shape=None):
    if shape is not None:  # iOS16: the mask is a flat bitmask packed into bytes
        shape = tuple(int(s) for s in np.asarray(shape).reshape(-1))
        flat_mask = np.unpackbits(np.asarray(mask, dtype=np.uint8), bitorder="little")[: int(np.prod(shape))]
    else:  # iOS18: the mask is a uint1 tensor of the output's shape
        shape = np.asarray(mask).shape
        flat_mask = np.asarray(mask).reshape(-1)
    out = np.zeros(int(np.prod(shape)), dtype=np.asarray(nonzero_data).dtype)
    out[flat_mask != 0] = nonzero_data
    return out.reshape(shape)


def shift_scale(data, scale, offset=None) -> np.ndarray:
    """scale * (data - offset), each scale/offset entry covering one block of ``data``."""
    data = np.asarray(data).astype(np.float32)
    if offset is not None:
        data = data - _repeat_blocks(np.asarray(offset).astype(np.float32), data.shape)
    return _repeat_blocks(np.asarray(scale).astype(np.float32), data.shape) * data


@kernel("constexpr_blockwise_shift_scale")
def constexpr_blockwise_shift_scale(op, data, scale, offset=None):
    return shift_scale(data, scale, offset)


@kernel("constexpr_sparse_blockwise_shift_scale")
def constexpr_sparse_blockwise_shift_scale(op, data_mask, nonzero_data, scale, offset=None):
    """(mask, dequantized nonzero values): blockwise shift-scale applied where the mask is set."""
    mask = np.asarray(data_mask)
    return mask, shift_scale(_scatter(mask, nonzero_data), scale, offset)[mask != 0]
