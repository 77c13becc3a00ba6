"""ONNX elementwise arithmetic and logic (Add Sub Mul Div Pow Mod Max Min Mean Sum And Or Xor) ->
MIL elementwise binary ops, NumPy broadcasting. ONNX int Div truncates toward zero where MIL
floor_div floors, and Mod(fmod=1) takes the dividend's sign where MIL mod takes the divisor's.
int8/uint8/int16/uint16 (iOS17+) are computed in int32 between casts.
"""
from __future__ import annotations


import numpy as np
from coremltools.converters.mil import Builder as mb
from coremltools.converters.mil.mil import types

from ..backend.convert.registry import op_builder
from ._common import Refuse, const_like, kind, require_kinds, widen

def trunc_div(a, b, name: str, tmp):
    """Integer division rounding toward zero: sign(a) * sign(b) * floor_div(|a|, |b|)."""
    q = mb.floor_div(x=mb.abs(x=a, name=tmp("abs_a")), y=mb.abs(x=b, name=tmp("abs_b")),
                     name=tmp("floor_div"))
    s = mb.mul(x=mb.sign(x=a, name=tmp("sign_a")), y=mb.sign(x=b, name=tmp("sign_b")),
               name=tmp("sign"))
    return mb.mul(x=q, y=s, name=name)


def fmod(a, b, name: str, tmp):
    """C fmod (result has the dividend's sign): sign(a) * mod(|a|, |b|)."""
    r = mb.mod(x=mb.abs(x=a, name=tmp("abs_a")), y=mb.abs(x=b, name=tmp("abs_b")),
               name=tmp("mod"))
    return mb.mul(x=mb.sign(x=a, name=tmp("sign_a")), y=r, name=name)


_SIMPLE = {"Add": "add", "Sub": "sub", "Mul": "mul",
           "And": "logical_and", "Or": "logical_or", "Xor": "logical_xor"}
_VARIADIC = {"Max": "maximum", "Min": "minimum", "Sum": "add", "Mean": "add"}
_ALLOWED = {"And": ("bool",), "Or": ("bool",), "Xor": ("bool",), "Sum": ("float",), "Mean": ("float",)}


@op_builder(*_SIMPLE, "Div", "Pow", "Mod", *_VARIADIC, min_opset=7)
def binary(node, ctx):
    out = node.outputs[0]
    name = ctx.mil_name(out)

    op = node.op_type
    xs, back = widen([ctx.input(node, i) for i in range(len(node.inputs)) if node.has_input(i)], ctx.tmp)
    inner = ctx.tmp("int32_result") if back else name
    if op in _VARIADIC:
        y = _variadic(op, xs, inner, ctx.tmp)
    else:
        y = _binary(node, xs[0], xs[1], inner, ctx.tmp)
    ctx.set_output(node, mb.cast(x=y, dtype=back, name=name) if back else y)


def _binary(node, a, b, name, tmp):
    op = node.op_type
    is_int = types.is_int(a.dtype)
    if op in _SIMPLE:
        return getattr(mb, _SIMPLE[op])(x=a, y=b, name=name)
    if op == "Div":
        return trunc_div(a, b, name, tmp) if is_int else mb.real_div(x=a, y=b, name=name)
    if op == "Mod":
        return fmod(a, b, name, tmp) if node.attr("fmod", 0) else mb.mod(x=a, y=b, name=name)
    return _pow(a, b, name, tmp)


def _pow(a, b, name, tmp):
    """ONNX Pow lets the exponent's type differ from the base's; the output has the base's type."""
    if types.is_int(a.dtype) and not types.is_int(b.dtype):
        p = mb.pow(x=mb.cast(x=a, dtype="fp32", name=tmp("base_fp32")),
                   y=mb.cast(x=b, dtype="fp32", name=tmp("exponent_fp32")), name=tmp("pow"))
        return mb.cast(x=p, dtype="int32", name=name)
    if b.dtype != a.dtype:
        b = mb.cast(x=b, dtype=types.builtin_to_string(a.dtype), name=tmp("exponent_cast"))
    return mb.pow(x=a, y=b, name=name)


def _variadic(op, xs, name, tmp):
    fn = getattr(mb, _VARIADIC[op])
    mean = op == "Mean"
    if len(xs) == 1:
        return mb.identity(x=xs[0], name=name)
    acc = xs[0]
    for k, x in enumerate(xs[1:], start=1):
        last = k == len(xs) - 1 and not mean
        acc = fn(x=acc, y=x, name=name if last else tmp(f"acc{k}"))
    if mean:
        acc = mb.real_div(x=acc, y=const_like(len(xs), acc), name=name)
    return acc


@binary.check
def _(node, ctx):
    op = node.op_type
    if op == "Mod" and node.opset < 10:
        raise Refuse("Mod exists from opset 10")
    allowed = _ALLOWED.get(op, ("float", "int"))
    require_kinds(ctx, node.inputs[:1] if op == "Pow" else node.inputs, allowed, widens_small_ints=True)
    if op == "Pow":
        require_kinds(ctx, node.inputs[1:2], ("float", "int"), widens_small_ints=True)
    floor_mod_of_floats = not node.attr("fmod", 0) and kind(ctx.dtype(node.inputs[0]) or np.int32) == "float"
    if op == "Mod" and floor_mod_of_floats and node.opset < 28:
        raise Refuse("Mod of floating-point tensors needs fmod=1 before opset 28 (ONNX spec)")
