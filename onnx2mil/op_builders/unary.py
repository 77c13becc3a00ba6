"""ONNX elementwise unary math (Sqrt Exp Log trig Relu Abs Neg Reciprocal Round ... IsNaN IsInf Not)
-> one MIL elementwise op each, or a short expansion where MIL lacks the op (Asinh, Acosh, IsNaN,
IsInf, int Relu). MIL ``log``/``inverse`` add an epsilon by default: emitted with epsilon=0.
"""
from __future__ import annotations

import numpy as np
from coremltools.converters.mil import Builder as mb
from coremltools.converters.mil.mil import types

from ..backend.convert.registry import op_builder
from .binary import dtype_refusal, like

# ONNX op -> MIL op of the same float semantics.
_FLOAT = {
    "Sqrt": "sqrt", "Exp": "exp", "Sin": "sin", "Cos": "cos", "Tan": "tan", "Asin": "asin",
    "Acos": "acos", "Atan": "atan", "Sinh": "sinh", "Cosh": "cosh", "Atanh": "atanh", "Tanh": "tanh",
    "Sigmoid": "sigmoid", "Floor": "floor", "Ceil": "ceil", "Round": "round", "Erf": "erf",
    "Softplus": "softplus", "Softsign": "softsign",
}


def _abs(x, name, scratch):
    return mb.abs(x=x, name=name)


def _sign(x, name, scratch):
    return mb.sign(x=x, name=name)


def _not(x, name, scratch):
    return mb.logical_not(x=x, name=name)


def _neg(x, name, scratch):
    return mb.mul(x=x, y=like(-1, x), name=name)


def _relu(x, name, scratch):
    if types.is_float(x.dtype):
        return mb.relu(x=x, name=name)
    return mb.maximum(x=x, y=like(0, x), name=name)


def _log(x, name, scratch):
    return mb.log(x=x, epsilon=like(0.0, x), name=name)


def _reciprocal(x, name, scratch):
    return mb.inverse(x=x, epsilon=like(0.0, x), name=name)


def _asinh(x, name, scratch):
    """sign(x) * log(|x| + sqrt(x^2 + 1)): no cancellation for negative x."""
    a = mb.abs(x=x, name=scratch("abs"))
    r = mb.sqrt(x=mb.add(x=mb.mul(x=a, y=a, name=scratch("square")), y=like(1.0, x), name=scratch("plus_1")),
                name=scratch("sqrt"))
    lg = mb.log(x=mb.add(x=a, y=r, name=scratch("sum")), epsilon=like(0.0, x), name=scratch("log"))
    return mb.mul(x=mb.sign(x=x, name=scratch("sign")), y=lg, name=name)


def _acosh(x, name, scratch):
    """log(x + sqrt((x - 1) * (x + 1))), defined for x >= 1."""
    d = mb.mul(x=mb.sub(x=x, y=like(1.0, x), name=scratch("minus_1")),
               y=mb.add(x=x, y=like(1.0, x), name=scratch("plus_1")), name=scratch("product"))
    s = mb.add(x=x, y=mb.sqrt(x=d, name=scratch("sqrt")), name=scratch("sum"))
    return mb.log(x=s, epsilon=like(0.0, x), name=name)


def _isnan(x, name, scratch):
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

    def scratch(what):
        return ctx.scratch(f"{out}_{what}")

    op = node.op_type
    if op in _FLOAT:
        y = getattr(mb, _FLOAT[op])(x=x, name=name)
    elif op == "IsInf":
        y = _isinf(x, bool(node.attr("detect_positive", 1)), bool(node.attr("detect_negative", 1)), name, scratch)
    else:
        y = _SPECIAL[op](x, name, scratch)
    ctx.set_output(node, y)


def _isinf(x, positive: bool, negative: bool, name, scratch):
    if positive and negative:
        return mb.equal(x=mb.abs(x=x, name=scratch("abs")), y=like(np.inf, x), name=name)
    if positive or negative:
        return mb.equal(x=x, y=like(np.inf if positive else -np.inf, x), name=name)
    return mb.fill(shape=mb.shape(x=x, name=scratch("shape")), value=False, name=name)


@unary.check
def _(node, ctx):
    return dtype_refusal(ctx, node.inputs[:1], _ALLOWED.get(node.op_type, ("float",)))
