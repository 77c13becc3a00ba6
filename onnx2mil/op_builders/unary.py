"""ONNX elementwise unary math (Sqrt Exp Log trig Relu Abs Neg Reciprocal Round ... IsNaN IsInf Not)
-> one MIL elementwise op each, or a short expansion where MIL lacks the op (Asinh, Acosh, IsNaN,
IsInf, int Relu). MIL ``log``/``inverse`` add an epsilon by default: emitted with epsilon=0.
"""
from __future__ import annotations

import numpy as np
from coremltools.converters.mil import Builder as mb
from coremltools.converters.mil.mil import types

from ..backend.convert.registry import op_builder
from ._common import const_like, require_kinds

# ONNX op -> MIL op of the same float semantics.
_FLOAT = {
    "Sqrt": "sqrt", "Exp": "exp", "Sin": "sin", "Cos": "cos", "Tan": "tan", "Asin": "asin",
    "Acos": "acos", "Atan": "atan", "Sinh": "sinh", "Cosh": "cosh", "Atanh": "atanh", "Tanh": "tanh",
    "Sigmoid": "sigmoid", "Floor": "floor", "Ceil": "ceil", "Round": "round", "Erf": "erf",
    "Softplus": "softplus", "Softsign": "softsign",
}


def _abs(x, name, tmp):
    return mb.abs(x=x, name=name)


def _sign(x, name, tmp):
    return mb.sign(x=x, name=name)


def _not(x, name, tmp):
    return mb.logical_not(x=x, name=name)


def _neg(x, name, tmp):
    return mb.mul(x=x, y=const_like(-1, x), name=name)


def _relu(x, name, tmp):
    if types.is_float(x.dtype):
        return mb.relu(x=x, name=name)
    return mb.maximum(x=x, y=const_like(0, x), name=name)


def _log(x, name, tmp):
    return mb.log(x=x, epsilon=const_like(0.0, x), name=name)


def _reciprocal(x, name, tmp):
    return mb.inverse(x=x, epsilon=const_like(0.0, x), name=name)


def _asinh(x, name, tmp):
    """sign(x) * log(|x| + sqrt(x^2 + 1)): no cancellation for negative x."""
    a = mb.abs(x=x, name=tmp("abs"))
    r = mb.sqrt(x=mb.add(x=mb.mul(x=a, y=a, name=tmp("square")), y=const_like(1.0, x), name=tmp("plus_1")),
                name=tmp("sqrt"))
    lg = mb.log(x=mb.add(x=a, y=r, name=tmp("sum")), epsilon=const_like(0.0, x), name=tmp("log"))
    return mb.mul(x=mb.sign(x=x, name=tmp("sign")), y=lg, name=name)


def _acosh(x, name, tmp):
    """log(x + sqrt((x - 1) * (x + 1))), defined for x >= 1."""
    d = mb.mul(x=mb.sub(x=x, y=const_like(1.0, x), name=tmp("minus_1")),
               y=mb.add(x=x, y=const_like(1.0, x), name=tmp("plus_1")), name=tmp("product"))
    s = mb.add(x=x, y=mb.sqrt(x=d, name=tmp("sqrt")), name=tmp("sum"))
    return mb.log(x=s, epsilon=const_like(0.0, x), name=name)


def _isnan(x, name, tmp):
    return mb.not_equal(x=x, y=x, name=name)


_SPECIAL = {"Abs": _abs, "Sign": _sign, "Not": _not, "Neg": _neg, "Relu": _relu, "Log": _log,
            "Reciprocal": _reciprocal, "Asinh": _asinh, "Acosh": _acosh, "IsNaN": _isnan}
_ALLOWED = {"Abs": ("float", "int"), "Sign": ("float", "int"), "Neg": ("float", "int"),
            "Relu": ("float", "int"), "Not": ("bool",)}


@op_builder(*_FLOAT, *_SPECIAL, "IsInf", min_opset=1)
def unary(node, ctx):
    x = ctx.input(node, 0)
    out = node.outputs[0]
    name = ctx.mil_name(out)

    op = node.op_type
    if op in _FLOAT:
        y = getattr(mb, _FLOAT[op])(x=x, name=name)
    elif op == "IsInf":
        y = _isinf(x, bool(node.attr("detect_positive", 1)), bool(node.attr("detect_negative", 1)), name, ctx.tmp)
    else:
        y = _SPECIAL[op](x, name, ctx.tmp)
    ctx.set_output(node, y)


def _isinf(x, positive: bool, negative: bool, name, tmp):
    if positive and negative:
        return mb.equal(x=mb.abs(x=x, name=tmp("abs")), y=const_like(np.inf, x), name=name)
    if positive or negative:
        return mb.equal(x=x, y=const_like(np.inf if positive else -np.inf, x), name=name)
    return mb.fill(shape=mb.shape(x=x, name=tmp("shape")), value=False, name=name)


@unary.check
def _(node, ctx):
    require_kinds(ctx, node.inputs[:1], _ALLOWED.get(node.op_type, ("float",)))
