"""ONNX QuantizeLinear / DequantizeLinear (per-tensor, per-axis, blocked) as MIL arithmetic:
``clip(round(x / scale) + zero_point)`` (MIL ``round`` is half-to-even, as ONNX) cast to int32, and
``(float(x) - zero_point) * scale``. A constant int8/uint8 weight with constant per-tensor or
per-axis parameters becomes ``constexpr_affine_dequantize`` (iOS16+), kept compressed. Under fp16
compute precision the arithmetic runs in fp16: values near a rounding tie may land one step off,
and 16-bit ranges exceed fp16's integer precision (build those with fp32)."""
from __future__ import annotations

import coremltools as ct
import numpy as np
from coremltools.converters.mil import Builder as mb
from coremltools.converters.mil.mil import types

from ..backend.convert.registry import op_builder
from ._common import Refuse, const_like

_RANGES = {np.dtype(t): (np.iinfo(t).min, np.iinfo(t).max)
           for t in (np.int8, np.uint8, np.int16, np.uint16, np.int32)}
_ONNX_TO_NP = {2: np.uint8, 3: np.int8, 4: np.uint16, 5: np.int16, 6: np.int32}
_FLOATS = (np.float16, np.float32, np.float64)


def quantized_dtype(node, ctx) -> np.dtype | None:
    """The integer type of the quantized side: zero point's, else output_dtype, else uint8."""
    name = node.inputs[2] if node.has_input(2) else None
    if name:
        return np.dtype(ctx.dtype(name)) if ctx.dtype(name) is not None else None
    if node.op_type == "DequantizeLinear":
        return np.dtype(ctx.dtype(node.inputs[0])) if ctx.dtype(node.inputs[0]) is not None else None
    code = node.attr("output_dtype", 0)
    return np.dtype(_ONNX_TO_NP.get(code, np.uint8)) if code in _ONNX_TO_NP or code == 0 else None


def _layout(param, x_rank: int, axis: int, block: int):
    """How a scale/zero-point tensor broadcasts against x: 'scalar', 'axis' (1-D along axis) or
    'blocked' (same rank, each entry covering ``block`` steps of axis)."""
    if block:
        return "blocked"
    return "scalar" if param is None or len(param) == 0 or param == (1,) else "axis"


def _aligned(ctx, value, x, axis: int, layout: str, block: int, what: str):
    """Scale / zero point shaped to broadcast against x (a numpy constant or a MIL var)."""
    if layout == "scalar":
        return value.reshape(()) if isinstance(value, np.ndarray) else value
    if layout == "axis":
        shape = [1] * x.rank
        shape[axis] = -1
        if isinstance(value, np.ndarray):
            return value.reshape(shape)
        return mb.reshape(x=value, shape=np.array(shape, np.int32), name=ctx.tmp(f"{what}_per_axis"))
    indices = np.arange(x.shape[axis], dtype=np.int32) // block
    if isinstance(value, np.ndarray):
        return np.take(value, indices, axis=axis)
    return mb.gather(x=value, indices=indices, axis=axis, name=ctx.tmp(f"{what}_blocks"))


def _operand(ctx, node, i: int, like, out: str, what: str, layout: str, axis: int, block: int, x):
    """Input i in the float dtype of ``like`` (numpy constant or var), aligned against x."""
    value = ctx.const(node.inputs[i])
    if value is not None:
        return const_like(_aligned(ctx, value, x, axis, layout, block, what), like)
    var = ctx.var(node.inputs[i])
    if var.dtype != like.dtype:
        var = mb.cast(x=var, dtype=types.builtin_to_string(like.dtype), name=ctx.tmp(f"{what}_float"))
    return _aligned(ctx, var, x, axis, layout, block, what)


def _params(node, ctx, x_rank: int):
    axis = node.attr("axis", 1) % x_rank if x_rank else 0
    block = node.attr("block_size", 0) or 0
    return axis, block, _layout(ctx.shape(node.inputs[1]), x_rank, axis, block)


@op_builder("QuantizeLinear", "DequantizeLinear", min_opset=10)
def quantize_linear(node, ctx):
    out = node.outputs[0]
    x_const = ctx.const(node.inputs[0])
    rank = x_const.ndim if x_const is not None else ctx.rank(node.inputs[0])
    axis, block, layout = _params(node, ctx, rank)
    if node.op_type == "DequantizeLinear" and _compressible(node, ctx, layout):
        scale = ctx.const(node.inputs[1]).astype(np.float32).reshape(-1)
        zero = ctx.const(node.inputs[2]).reshape(-1) if node.has_input(2) else np.zeros(1, x_const.dtype)
        y = mb.constexpr_affine_dequantize(
            quantized_data=x_const, scale=scale if scale.size > 1 else scale.reshape(()),
            zero_point=zero if zero.size > 1 else zero.reshape(()), axis=axis, name=ctx.mil_name(out))
        ctx.set_output(node, y)
        return
    x = ctx.input(node, 0)
    if node.op_type == "DequantizeLinear":
        scale = ctx.var(node.inputs[1]) if not ctx.is_const(node.inputs[1]) else None
        float_dtype = types.builtin_to_string(scale.dtype) if scale is not None else "fp32"
        xf = mb.cast(x=x, dtype=float_dtype, name=ctx.tmp("float"))
        if node.has_input(2):
            zero = _operand(ctx, node, 2, xf, out, "zero_point", layout, axis, block, x)
            xf = mb.sub(x=xf, y=zero, name=ctx.tmp("centered"))
        scale = _operand(ctx, node, 1, xf, out, "scale", layout, axis, block, x)
        ctx.set_output(node, mb.mul(x=xf, y=scale, name=ctx.mil_name(out)))
        return
    low, high = _RANGES[quantized_dtype(node, ctx)]
    scale = _operand(ctx, node, 1, x, out, "scale", layout, axis, block, x)
    y = mb.real_div(x=x, y=scale, name=ctx.tmp("scaled"))
    y = mb.round(x=y, name=ctx.tmp("rounded"))
    if node.has_input(2):
        y = mb.add(x=y, y=_operand(ctx, node, 2, x, out, "zero_point", layout, axis, block, x),
                   name=ctx.tmp("shifted"))
    y = mb.clip(x=y, alpha=const_like(low, x), beta=const_like(high, x), name=ctx.tmp("saturated"))
    ctx.set_output(node, mb.cast(x=y, dtype="int32", name=ctx.mil_name(out)))


def _compressible(node, ctx, layout: str) -> bool:
    x = ctx.const(node.inputs[0])
    return (x is not None and x.dtype in (np.int8, np.uint8) and layout in ("scalar", "axis")
            and ctx.is_const(node.inputs[1]) and (not node.has_input(2) or ctx.is_const(node.inputs[2]))
            and (not node.has_input(2) or ctx.const(node.inputs[2]).dtype == x.dtype)
            and ctx.target >= ct.target.iOS16)


@quantize_linear.check
def _(node, ctx):
    x_const = ctx.const(node.inputs[0])
    rank = x_const.ndim if x_const is not None else ctx.rank(node.inputs[0])
    if rank is None:
        raise Refuse("input rank is unknown")
    qdtype = quantized_dtype(node, ctx)
    if qdtype is None or qdtype not in _RANGES:
        raise Refuse(f"quantized dtype {qdtype} (int8/uint8/int16/uint16/int32 only; MIL has no fp8/int4 types)")
    if node.op_type == "QuantizeLinear" and ctx.dtype(node.inputs[0]) not in _FLOATS:
        raise Refuse(f"input dtype {ctx.dtype(node.inputs[0])} (QuantizeLinear on fp16/fp32)")
    scale_shape = ctx.shape(node.inputs[1])
    if scale_shape is None:
        raise Refuse("scale rank is unknown")
    axis, block, layout = _params(node, ctx, rank)
    x_shape = x_const.shape if x_const is not None else ctx.shape(node.inputs[0])
    if layout == "blocked" and not isinstance(x_shape[axis], int):
        raise Refuse("blocked quantization needs a static size on the quantized axis")
    if layout == "axis" and len(scale_shape) != 1:
        raise Refuse(f"scale of shape {scale_shape} with block_size 0 (per-tensor or 1-D per-axis only)")
    if node.opset < 13 and layout != "scalar":
        raise Refuse("per-axis scales need opset >= 13")
