"""ONNX elementwise arithmetic and logic (Add Sub Mul Div Pow Mod Max Min Mean Sum And Or Xor) ->
MIL elementwise binary ops, NumPy broadcasting. ONNX int Div truncates toward zero where MIL
floor_div floors, and Mod(fmod=1) takes the dividend's sign where MIL mod takes the divisor's.
int8/uint8/int16/uint16 (iOS17+) are computed in int32 between casts.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import coremltools as ct
from coremltools.converters.mil import Builder as mb
from coremltools.converters.mil.mil import Var, types
from coremltools.converters.mil.mil.types.type_mapping import nptype_from_builtin

from ..backend.convert.registry import op_builder

_FLOAT = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))
_INT = (np.dtype(np.int32), np.dtype(np.int64))
_SMALL_INT = (np.dtype(np.int8), np.dtype(np.uint8), np.dtype(np.int16), np.dtype(np.uint16))


def kind(dtype) -> Optional[str]:
    """'float', 'int' (ONNX int32/int64: int32 in MIL), 'small_int' (int8/uint8/int16/uint16) or
    'bool'; None for what MIL math lacks."""
    dt = np.dtype(dtype)
    if dt in _FLOAT:
        return "float"
    if dt in _INT:
        return "int"
    if dt in _SMALL_INT:
        return "small_int"
    return "bool" if dt == np.bool_ else None


def dtype_refusal(ctx, names, allowed: tuple[str, ...], widens_small_ints: bool = False) -> Optional[str]:
    """A reason if an input's ONNX dtype is not of the allowed kinds (unknown dtypes pass).
    ``widens_small_ints``: the builder computes small ints in int32 (see ``widen``)."""
    for name in names:
        dt = ctx.dtype(name) if name else None
        k = kind(dt) if dt is not None else None
        if k == "small_int" and widens_small_ints and "int" in allowed:
            if ctx.target < ct.target.iOS17:
                return f"input '{name}' is {np.dtype(dt).name}: computed in int32 between casts, which " \
                       "need minimum_deployment_target >= iOS17"
        elif dt is not None and k not in allowed:
            return f"input '{name}' is {np.dtype(dt).name}; this lowering takes {'/'.join(allowed)} tensors"
    return None


def widen(vars_, scratch):
    """int8/uint8/int16/uint16 vars cast to int32, and the MIL dtype to cast a result back to: the
    first var's when it is a small int, else None."""
    small = [isinstance(v, Var) and types.builtin_to_string(v.dtype) in ("int8", "uint8", "int16", "uint16")
             for v in vars_]
    back = types.builtin_to_string(vars_[0].dtype) if small[0] else None
    out = [mb.cast(x=v, dtype="int32", name=scratch(f"int32_{i}")) if s else v
           for i, (v, s) in enumerate(zip(vars_, small))]
    return out, back


def like(value, var) -> np.ndarray:
    """A constant of ``var``'s MIL dtype (fp16 inputs need fp16 operands)."""
    return np.array(value, dtype=nptype_from_builtin(var.dtype))


def trunc_div(a, b, name: str, scratch):
    """Integer division rounding toward zero: sign(a) * sign(b) * floor_div(|a|, |b|)."""
    q = mb.floor_div(x=mb.abs(x=a, name=scratch("abs_a")), y=mb.abs(x=b, name=scratch("abs_b")),
                     name=scratch("floor_div"))
    s = mb.mul(x=mb.sign(x=a, name=scratch("sign_a")), y=mb.sign(x=b, name=scratch("sign_b")),
               name=scratch("sign"))
    return mb.mul(x=q, y=s, name=name)


def fmod(a, b, name: str, scratch):
    """C fmod (result has the dividend's sign): sign(a) * mod(|a|, |b|)."""
    r = mb.mod(x=mb.abs(x=a, name=scratch("abs_a")), y=mb.abs(x=b, name=scratch("abs_b")),
               name=scratch("mod"))
    return mb.mul(x=mb.sign(x=a, name=scratch("sign_a")), y=r, name=name)


_SIMPLE = {"Add": "add", "Sub": "sub", "Mul": "mul",
           "And": "logical_and", "Or": "logical_or", "Xor": "logical_xor"}
_VARIADIC = {"Max": "maximum", "Min": "minimum", "Sum": "add", "Mean": "add"}
_ALLOWED = {"And": ("bool",), "Or": ("bool",), "Xor": ("bool",), "Sum": ("float",), "Mean": ("float",)}


@op_builder(*_SIMPLE, "Div", "Pow", "Mod", *_VARIADIC, min_opset=7)
def binary(node, ctx):
    out = node.outputs[0]
    name = ctx.mil_name(out)

    def scratch(what):
        return ctx.scratch(f"{out}_{what}")

    op = node.op_type
    xs, back = widen([ctx.input(node, i) for i in range(len(node.inputs)) if node.has_input(i)], scratch)
    inner = scratch("int32_result") if back else name
    if op in _VARIADIC:
        y = _variadic(op, xs, inner, scratch)
    else:
        y = _binary(node, xs[0], xs[1], inner, scratch)
    ctx.set_output(node, mb.cast(x=y, dtype=back, name=name) if back else y)


def _binary(node, a, b, name, scratch):
    op = node.op_type
    is_int = types.is_int(a.dtype)
    if op in _SIMPLE:
        return getattr(mb, _SIMPLE[op])(x=a, y=b, name=name)
    if op == "Div":
        return trunc_div(a, b, name, scratch) if is_int else mb.real_div(x=a, y=b, name=name)
    if op == "Mod":
        return fmod(a, b, name, scratch) if node.attr("fmod", 0) else mb.mod(x=a, y=b, name=name)
    return _pow(a, b, name, scratch)


def _pow(a, b, name, scratch):
    """ONNX Pow lets the exponent's type differ from the base's; the output has the base's type."""
    if types.is_int(a.dtype) and not types.is_int(b.dtype):
        p = mb.pow(x=mb.cast(x=a, dtype="fp32", name=scratch("base_fp32")),
                   y=mb.cast(x=b, dtype="fp32", name=scratch("exponent_fp32")), name=scratch("pow"))
        return mb.cast(x=p, dtype="int32", name=name)
    if b.dtype != a.dtype:
        b = mb.cast(x=b, dtype=types.builtin_to_string(a.dtype), name=scratch("exponent_cast"))
    return mb.pow(x=a, y=b, name=name)


def _variadic(op, xs, name, scratch):
    fn = getattr(mb, _VARIADIC[op])
    mean = op == "Mean"
    if len(xs) == 1:
        return mb.identity(x=xs[0], name=name)
    acc = xs[0]
    for k, x in enumerate(xs[1:], start=1):
        last = k == len(xs) - 1 and not mean
        acc = fn(x=acc, y=x, name=name if last else scratch(f"acc{k}"))
    if mean:
        acc = mb.real_div(x=acc, y=like(len(xs), acc), name=name)
    return acc


@binary.check
def _(node, ctx):
    op = node.op_type
    if op == "Mod" and node.opset < 10:
        return "Mod exists from opset 10"
    allowed = _ALLOWED.get(op, ("float", "int"))
    reason = dtype_refusal(ctx, node.inputs[:1] if op == "Pow" else node.inputs, allowed, widens_small_ints=True)
    if reason:
        return reason
    if op == "Pow":
        return dtype_refusal(ctx, node.inputs[1:2], ("float", "int"), widens_small_ints=True)
    floor_mod_of_floats = not node.attr("fmod", 0) and kind(ctx.dtype(node.inputs[0]) or np.int32) == "float"
    if op == "Mod" and floor_mod_of_floats and node.opset < 28:
        return "Mod of floating-point tensors needs fmod=1 before opset 28 (ONNX spec)"
    return None
