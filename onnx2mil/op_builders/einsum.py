"""ONNX Einsum -> MIL transpose / reshape / matmul for two operands with static shapes, else
operands transposed and expanded to one shared letter order, multiplied and reduce_sum'd.
Repeated letters in an operand (diagonals) multiply by an identity mask and sum one copy away."""
from __future__ import annotations

import string

import numpy as np
from coremltools.converters.mil import Builder as mb

from ..backend.convert.registry import op_builder
from ._common import Refuse, const_like, require_float_or_int

_MAX_RANK = 5  # Core ML tensors have rank <= 5
_FREE = [c for c in string.ascii_uppercase + string.ascii_lowercase]


def parse(equation: str, ranks: list[int]) -> tuple[list[str], str]:
    """Operand letter strings and the output string, ellipses spelled as fresh letters
    (right-aligned across operands, as numpy broadcasts them)."""
    eq = equation.replace(" ", "")
    lhs, _, rhs = eq.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(ranks):
        raise ValueError(f"equation has {len(terms)} operands, node has {len(ranks)}")
    used = set(eq) - set(".,->")
    spare = [c for c in _FREE if c not in used]
    n_ell = max((r - len(t.replace("...", "")) for t, r in zip(terms, ranks) if "..." in t), default=0)
    ell = "".join(spare[:n_ell])
    operands = []
    for t, r in zip(terms, ranks):
        if "..." in t:
            k = r - len(t.replace("...", ""))
            t = t.replace("...", ell[n_ell - k:] if k else "")
        if len(t) != r:
            raise ValueError(f"operand term '{t}' does not match rank {r}")
        operands.append(t)
    if "->" in eq:
        out = rhs.replace("...", ell)
    else:
        counts = {c: sum(o.count(c) for o in operands) for c in set("".join(operands))}
        out = ell + "".join(sorted(c for c, n in counts.items() if n == 1 and c not in ell))
    return operands, out


def _take_diagonals(x, letters: str, ctx):
    """Sum away repeated letters of one operand after masking to their diagonal."""
    while len(set(letters)) < len(letters):
        c = next(ch for ch in letters if letters.count(ch) > 1)
        p = letters.index(c)
        q = letters.index(c, p + 1)
        n = x.shape[p]
        shape = [1] * len(letters)
        shape[p], shape[q] = n, n
        mask = np.eye(n).reshape(shape)
        x = mb.mul(x=x, y=const_like(mask, x), name=ctx.tmp("diag_mask"))
        x = mb.reduce_sum(x=x, axes=[q], keep_dims=False, name=ctx.tmp("diag"))
        letters = letters[:q] + letters[q + 1:]
    return x, letters


def _transpose(x, letters: str, order: str, ctx, name=None):
    if letters == order:
        return x
    return mb.transpose(x=x, perm=[letters.index(c) for c in order], name=name or ctx.tmp("perm"))


def _sum_out(x, letters: str, keep: set, ctx):
    axes = [i for i, c in enumerate(letters) if c not in keep]
    if not axes:
        return x, letters
    x = mb.reduce_sum(x=x, axes=axes, keep_dims=False, name=ctx.tmp("sum"))
    return x, "".join(c for c in letters if c in keep)


def _matmul(a, la: str, b, lb: str, lo: str, ctx, out: str):
    """Two operands with static shapes: [batch, left, contract] @ [batch, contract, right]."""
    batch = [c for c in lo if c in la and c in lb]
    contract = [c for c in la if c in lb and c not in lo]
    left = [c for c in la if c not in lb]
    right = [c for c in lb if c not in la]
    size = {**dict(zip(lb, b.shape)), **dict(zip(la, a.shape))}
    a_dims = dict(zip(la, a.shape))
    b_dims = dict(zip(lb, b.shape))
    a = _transpose(a, la, "".join(batch + left + contract), ctx)
    a = mb.reshape(x=a, shape=[a_dims[c] for c in batch] + [int(np.prod([size[c] for c in left])),
                                                              int(np.prod([size[c] for c in contract]))],
                   name=ctx.tmp("lhs"))
    b = _transpose(b, lb, "".join(batch + contract + right), ctx)
    b = mb.reshape(x=b, shape=[b_dims[c] for c in batch] + [int(np.prod([size[c] for c in contract])),
                                                              int(np.prod([size[c] for c in right]))],
                   name=ctx.tmp("rhs"))
    y = mb.matmul(x=a, y=b, name=ctx.tmp("matmul"))
    batch_dims = [max(a_dims[c], b_dims[c]) for c in batch]
    y = mb.reshape(x=y, shape=np.array(batch_dims + [size[c] for c in left] + [size[c] for c in right], np.int32),
                   name=ctx.tmp("unflatten"))
    return y, "".join(batch + left + right)


def _broadcast_product(xs, terms, ctx, out: str):
    """Every operand transposed and expanded to one letter order, then multiplied."""
    order = "".join(dict.fromkeys("".join(terms)))
    y = None
    for x, t in zip(xs, terms):
        present = "".join(c for c in order if c in t)
        x = _transpose(x, t, present, ctx)
        missing = [i for i, c in enumerate(order) if c not in t]
        if missing:
            x = mb.expand_dims(x=x, axes=missing, name=ctx.tmp("expand"))
        y = x if y is None else mb.mul(x=y, y=x, name=ctx.tmp("product"))
    return y, order


@op_builder("Einsum", min_opset=12)
def einsum(node, ctx):
    xs = [ctx.input(node, i) for i in range(len(node.inputs))]
    out = node.outputs[0]
    terms, lo = parse(node.attr("equation"), [x.rank for x in xs])
    if not lo and not any(terms):
        ctx.set_output(node, mb.identity(x=xs[0], name=ctx.mil_name(out)))
        return
    parts = []
    for i, (x, t) in enumerate(zip(xs, terms)):
        x, t = _take_diagonals(x, t, ctx)
        others = set(lo).union(*(terms[j] for j in range(len(terms)) if j != i))
        parts.append(_sum_out(x, t, others, ctx))
    xs, terms = [p[0] for p in parts], [p[1] for p in parts]
    static = all(isinstance(d, int) for x in xs for d in x.shape)
    if len(xs) == 2 and static and _matmul_rank(terms, lo) <= _MAX_RANK:
        y, ly = _matmul(xs[0], terms[0], xs[1], terms[1], lo, ctx, out)
    else:
        y, ly = _broadcast_product(xs, terms, ctx, out) if len(xs) > 1 else (xs[0], terms[0])
        y, ly = _sum_out(y, ly, set(lo), ctx)
    if ly == lo:
        y = mb.identity(x=y, name=ctx.mil_name(out))
    else:
        y = _transpose(y, ly, lo, ctx, name=ctx.mil_name(out))
    ctx.set_output(node, y)


def _matmul_rank(terms, lo) -> int:
    la, lb = terms
    return len([c for c in lo if c in la and c in lb]) + 2


@einsum.check
def _(node, ctx):
    ranks = [ctx.rank(i) for i in node.inputs]
    if any(r is None for r in ranks):
        raise Refuse("operand ranks must be known")
    try:
        terms, lo = parse(node.attr("equation"), ranks)
    except ValueError as e:
        raise Refuse(f"equation '{node.attr('equation')}': {e}")
    for name, t in zip(node.inputs, terms):
        shape = ctx.shape(name)
        if len(set(t)) < len(t) and not all(isinstance(shape[i], int) for i, c in enumerate(t) if t.count(c) > 1):
            raise Refuse(f"diagonal of operand '{t}' needs static sizes on its repeated dims")
        require_float_or_int(ctx, name, "MIL matmul/mul take fp16, fp32, int32", "operand")
    if len(lo) > _MAX_RANK:
        raise Refuse(f"a rank-{len(lo)} output (Core ML tensors have rank <= 5)")
    letters = set("".join(terms))
    if len(terms) > 1 and len(letters) > _MAX_RANK and not (
            len(terms) == 2 and _matmul_rank([''.join(dict.fromkeys(t)) for t in terms], lo) <= _MAX_RANK):
        raise Refuse(f"{len(letters)} distinct indices exceed Core ML's rank-5 tensors")
