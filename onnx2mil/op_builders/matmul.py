"""ONNX MatMul -> MIL ``matmul``; 1-D operands are made 2-D and squeezed back (coremltools 9's
matmul type inference mis-shapes 1-D x with batched y and rejects 1-D y). Gemm -> ``linear`` when B is
a constant and A is not transposed (alpha folded into the weight, beta*C into the bias when C is
per-column), else ``matmul`` with transpose flags, then ``mul`` alpha and ``add`` beta*C.
"""
from __future__ import annotations

from coremltools.converters.mil import Builder as mb

from ..backend.convert.registry import op_builder
from ._common import Refuse, const_like, reason, require_kinds


@op_builder("MatMul", min_opset=1)
def matmul(node, ctx):
    a, b = ctx.input(node, 0), ctx.input(node, 1)
    out = node.outputs[0]
    name = ctx.mil_name(out)
    if a.rank == 1 and b.rank == 1:
        product = mb.mul(x=a, y=b, name=ctx.tmp("product"))
        ctx.set_output(node, mb.reduce_sum(x=product, axes=[0], keep_dims=False, name=name))
        return
    squeeze = []
    if a.rank == 1:
        a = mb.expand_dims(x=a, axes=[0], name=ctx.tmp("row"))
        squeeze = [-2]
    if b.rank == 1:
        b = mb.expand_dims(x=b, axes=[1], name=ctx.tmp("column"))
        squeeze = [-1]
    y = mb.matmul(x=a, y=b, name=ctx.tmp("matmul") if squeeze else name)
    ctx.set_output(node, mb.squeeze(x=y, axes=squeeze, name=name) if squeeze else y)


@matmul.check
def _(node, ctx):
    require_kinds(ctx, node.inputs, ("float", "int"))


def _column_bias(c, n: int):
    """C as a (N,) bias if it broadcasts along rows only: shape (), (1,), (N,) or (1, N)."""
    if c.ndim > 2 or (c.ndim == 2 and c.shape[0] != 1) or (c.size not in (1, n)):
        return None
    return c.reshape(-1) if c.size == n else c.reshape(()).repeat(n)


@op_builder("Gemm", min_opset=7)
def gemm(node, ctx):
    out = node.outputs[0]
    name = ctx.mil_name(out)
    a = ctx.input(node, 0)
    alpha, beta = node.attr("alpha"), node.attr("beta")
    trans_a, trans_b = bool(node.attr("transA")), bool(node.attr("transB"))
    b_const = ctx.const(node.inputs[1])
    c_const = ctx.const(node.inputs[2]) if node.has_input(2) else None
    use_c = node.has_input(2) and beta != 0.0
    if b_const is not None and not trans_a:
        weight = const_like((b_const if trans_b else b_const.T) * alpha, a)
        bias = _column_bias(c_const, weight.shape[0]) if use_c and c_const is not None else None
        last = not use_c or bias is not None
        y = mb.linear(x=a, weight=weight, bias=None if bias is None else const_like(bias * beta, a),
                      name=name if last else ctx.tmp("linear"))
        if last:
            ctx.set_output(node, y)
            return
    else:
        y = mb.matmul(x=a, y=ctx.input(node, 1), transpose_x=trans_a, transpose_y=trans_b,
                      name=name if not use_c and alpha == 1.0 else ctx.tmp("matmul"))
        if alpha != 1.0:
            y = mb.mul(x=y, y=const_like(alpha, a), name=name if not use_c else ctx.tmp("alpha"))
        if not use_c:
            ctx.set_output(node, y)
            return
    if c_const is not None:
        c = const_like(c_const * beta, a)
    else:
        c = ctx.input(node, 2)
        if beta != 1.0:
            c = mb.mul(x=c, y=const_like(beta, a), name=ctx.tmp("beta_c"))
    ctx.set_output(node, mb.add(x=y, y=c, name=name))


@gemm.check
def _(node, ctx):
    if refusal := reason(require_kinds, ctx, node.inputs, ("float",)):
        raise Refuse(refusal + " (Gemm's alpha/beta are floats; integer Gemm is not lowered)")
