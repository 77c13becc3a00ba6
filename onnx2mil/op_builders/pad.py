"""ONNX Pad (``pads``/``value`` attributes before opset 11; pads, constant_value, axes inputs
after) -> MIL ``pad``: constant, reflect, edge (MIL ``replicate``); wrap as a concat of slices.

CoreML rejects reflect/replicate padding outside the last two dims ("Padding for more than two
dimensions only supports constant mode", coremltools#2576): such an axis is transposed to the
end, padded alone and transposed back. Negative (cropping) pads become a slice. Runtime pads
(e.g. computed from a symbolic length, as EnCodec's convs do) in edge/reflect mode gather each
padded axis at source indices computed from the output index.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
from coremltools.converters.mil import Builder as mb
from coremltools.converters.mil.mil import types

from ..backend.convert.registry import op_builder
from ._common import Refuse, require_const, require_float_or_int, require_shape

_MODES = {"constant": "constant", "reflect": "reflect", "edge": "replicate", "wrap": "wrap"}


def onnx_pads(node, ctx, rank: int) -> Optional[list[tuple[int, int]]]:
    """(begin, end) per axis of the input, or None if the pads are a runtime tensor."""
    if node.opset < 11:
        flat = list(node.attr("pads"))
        axes = list(range(rank))
    else:
        value = ctx.const(node.inputs[1])
        if value is None:
            return None
        flat = [int(v) for v in value.reshape(-1)]
        axes_value = ctx.const(node.inputs[3]) if node.opset >= 18 and node.has_input(3) else None
        axes = list(range(rank)) if axes_value is None else [int(a) % rank for a in axes_value.reshape(-1)]
    n = len(axes)
    pairs = [(0, 0)] * rank
    for k, a in enumerate(axes):
        pairs[a] = (flat[k], flat[k + n])
    return pairs


def _constant_value(node, ctx) -> float:
    if node.opset < 11:
        return float(node.attr("value", 0.0))
    if node.has_input(2):
        return float(ctx.const(node.inputs[2]).reshape(-1)[0])
    return 0.0


def _scalar(value: float, x):
    """The pad value in x's dtype (MIL pad takes fp16 or fp32)."""
    return np.float16(value) if x.dtype.__name__ == "fp16" else np.float32(value)


def _pad_trailing(x, pairs, mode, value, name):
    """One MIL pad over the trailing axes that need it (leading all-zero pairs dropped)."""
    first = next(i for i, p in enumerate(pairs) if p != (0, 0))
    flat = np.array([v for p in pairs[first:] for v in p], dtype=np.int32)
    extra = dict(constant_val=_scalar(value, x)) if mode == "constant" else {}
    return mb.pad(x=x, pad=flat, mode=mode, name=name, **extra)


def _pad_one_axis(x, axis, pair, mode, tmp, name):
    """Pad a single leading axis as the last one: transpose, pad, transpose back."""
    perm = [i for i in range(x.rank) if i != axis] + [axis]
    inverse = list(np.argsort(perm))
    moved = mb.transpose(x=x, perm=perm, name=tmp(f"axis{axis}_last"))
    padded = mb.pad(x=moved, pad=np.array(pair, np.int32), mode=mode, name=tmp(f"axis{axis}_pad"))
    return mb.transpose(x=padded, perm=inverse, name=name)


def _wrap(x, pairs, tmp, name):
    """Circular padding: [x[d-b:], x, x[:e]] along each padded axis."""
    padded_axes = [a for a, p in enumerate(pairs) if p != (0, 0)]
    for n, a in enumerate(padded_axes):
        b, e = pairs[a]
        pieces = []
        if b:
            pieces.append(_take(x, a, -b, None, tmp(f"wrap{a}_head")))
        pieces.append(x)
        if e:
            pieces.append(_take(x, a, 0, e, tmp(f"wrap{a}_tail")))
        x = mb.concat(values=pieces, axis=a, name=name if n == len(padded_axes) - 1 else tmp(f"wrap{a}"))
    return x


def _take(x, axis, begin: int, end: Optional[int], name):
    """x[begin:end] along ``axis`` (``end`` None: to the end; a negative begin counts from it)."""
    b, e = [0] * x.rank, [0] * x.rank
    b[axis], e[axis] = begin, end or 0
    mask = [i != axis for i in range(x.rank)]
    end_mask = [m or end is None for m in mask]
    return mb.slice_by_index(x=x, begin=b, end=e, begin_mask=mask, end_mask=end_mask, name=name)


def _runtime_pads(node, ctx, x, tmp):
    """Runtime ONNX [b0.., e0..] -> MIL [b0, e0, b1, e1, ...]."""
    pads = ctx.input(node, 1)
    pairs = mb.reshape(x=pads, shape=[2, x.rank], name=tmp("pads_2xn"))
    pairs = mb.transpose(x=pairs, perm=[1, 0], name=tmp("pads_nx2"))
    return mb.reshape(x=pairs, shape=[2 * x.rank], name=tmp("pads"))


def known_entries(ctx, name: str) -> Optional[list]:
    """The entries of a 1-D int tensor known at build time (None where computed at run time),
    looking through Concat; None if its length is unknown."""
    value = ctx.const(name)
    if value is not None:
        return [int(v) for v in value.reshape(-1)]
    producer = ctx.producer(name)
    if producer is not None and producer.op_type == "Concat" and not producer.domain:
        parts = [known_entries(ctx, i) for i in producer.inputs]
        return None if any(p is None for p in parts) else sum(parts, [])
    shape = ctx.shape(name)
    return [None] * shape[0] if shape is not None and len(shape) == 1 and isinstance(shape[0], int) else None


def _plus(a, b, name):
    """a + b for python ints and/or int32 scalar vars."""
    if isinstance(a, int) and isinstance(b, int):
        return a + b
    return mb.add(x=np.int32(a) if isinstance(a, int) else a, y=np.int32(b) if isinstance(b, int) else b, name=name)


def _gathered_pads(node, ctx, x, mode: str, final: str, tmp):
    """Edge/reflect pads from a runtime tensor: along each axis that may be padded, output index j
    reads source k = j - begin, clamped (edge: min(max(k, 0), n - 1)) or mirrored (reflect:
    (n - 1) - |(n - 1) - |k||)."""
    rank = x.rank
    entries = known_entries(ctx, node.inputs[1])
    pads = ctx.input(node, 1)
    axes = [a for a in range(rank) if entries[a] != 0 or entries[a + rank] != 0]
    if not axes:
        return mb.identity(x=x, name=final)
    in_shape = mb.shape(x=x, name=tmp("in_shape"))
    for n, a in enumerate(axes):
        b, e = (entries[i] if entries[i] is not None else
                mb.gather(x=pads, indices=np.int32(i), axis=0, name=tmp(f"pad{i}")) for i in (a, a + rank))
        size = int(x.shape[a]) if isinstance(x.shape[a], (int, np.integer)) else \
            mb.gather(x=in_shape, indices=np.int32(a), axis=0, name=tmp(f"size{a}"))
        length = _plus(_plus(size, b, tmp(f"grown{a}")), e, tmp(f"length{a}"))
        j = mb.range_1d(start=np.int32(0), end=np.int32(length) if isinstance(length, int) else length,
                        step=np.int32(1), name=tmp(f"index{a}"))
        k = mb.sub(x=j, y=np.int32(b) if isinstance(b, int) else b, name=tmp(f"offset{a}"))
        last = _plus(size, -1, tmp(f"last{a}"))
        last = np.int32(last) if isinstance(last, int) else last
        if mode == "replicate":
            src = mb.minimum(x=mb.maximum(x=k, y=np.int32(0), name=tmp(f"above{a}")), y=last, name=tmp(f"source{a}"))
        else:
            folded = mb.sub(x=last, y=mb.abs(x=k, name=tmp(f"mirror{a}")), name=tmp(f"from_last{a}"))
            src = mb.sub(x=last, y=mb.abs(x=folded, name=tmp(f"mirror_end{a}")), name=tmp(f"source{a}"))
        x = mb.gather(x=x, indices=src, axis=a, name=final if n == len(axes) - 1 else tmp(f"axis{a}"))
    return x


@op_builder("Pad", min_opset=2)
def pad(node, ctx):
    x = ctx.input(node, 0)
    out = node.outputs[0]

    if x.dtype == types.int32:  # MIL pad takes floats: int32 goes through fp32 (exact below 2^24)
        y = _pad(node, ctx, mb.cast(x=x, dtype="fp32", name=ctx.tmp("as_fp32")), ctx.tmp("fp32"), ctx.tmp)
        ctx.set_output(node, mb.cast(x=y, dtype="int32", name=ctx.mil_name(out)))
    else:
        ctx.set_output(node, _pad(node, ctx, x, ctx.mil_name(out), ctx.tmp))


def _pad(node, ctx, x, final: str, tmp):
    mode = _MODES[node.attr("mode", "constant")]
    value = _constant_value(node, ctx)
    pairs = onnx_pads(node, ctx, x.rank)
    if pairs is None and mode != "constant":
        return _gathered_pads(node, ctx, x, mode, final, tmp)
    if pairs is None:
        return mb.pad(x=x, pad=_runtime_pads(node, ctx, x, tmp), mode="constant", constant_val=_scalar(value, x),
                      name=final)
    grow = [(max(b, 0), max(e, 0)) for b, e in pairs]
    crop = any(b < 0 or e < 0 for b, e in pairs)
    steps = []  # (kind, arg): the pads and the final crop, each named in turn
    if any(p != (0, 0) for p in grow):
        if mode == "wrap":
            steps.append(("wrap", grow))
        elif mode == "constant":
            steps.append(("pad", grow))
        else:
            lead = [(a, p) for a, p in enumerate(grow[:-2]) if p != (0, 0)]
            steps += [("axis", (a, p)) for a, p in lead]
            last_two = [(0, 0)] * (x.rank - 2) + grow[-2:]
            if any(p != (0, 0) for p in last_two):
                steps.append(("pad", last_two))
    if crop:
        steps.append(("crop", pairs))
    if not steps:
        return mb.identity(x=x, name=final)
    for n, (kind, arg) in enumerate(steps):
        name = final if n == len(steps) - 1 else tmp(kind)
        if kind == "pad":
            x = _pad_trailing(x, arg, mode, value, name)
        elif kind == "axis":
            x = _pad_one_axis(x, arg[0], arg[1], mode, tmp, name)
        elif kind == "wrap":
            x = _wrap(x, arg, tmp, name)
        else:
            begin = [-min(b, 0) for b, _ in arg]
            end = [min(e, 0) for _, e in arg]  # negative: counted from the end
            x = mb.slice_by_index(x=x, begin=begin, end=end, begin_mask=[b >= 0 for b, _ in arg],
                                  end_mask=[e >= 0 for _, e in arg], name=name)
    return x


@pad.check
def _(node, ctx):
    shape = require_shape(ctx, node.inputs[0])
    require_float_or_int(ctx, node.inputs[0], "MIL pad takes fp16/fp32 (int32/int64 go through fp32)")
    mode = node.attr("mode", "constant")
    if mode not in _MODES:
        raise Refuse(f"mode '{mode}' has no MIL equivalent")
    if node.opset >= 11:
        if node.has_input(2):

            require_const(ctx, node.inputs[2], "constant_value")
        if node.opset >= 18 and node.has_input(3):

            require_const(ctx, node.inputs[3], "axes")
    pairs = onnx_pads(node, ctx, len(shape))
    if pairs is None:
        if node.opset >= 18 and node.has_input(3):
            raise Refuse("runtime pads with an axes input")
        if mode == "wrap":
            raise Refuse("runtime pads with mode 'wrap' (constant, edge and reflect take runtime pads)")
        entries = known_entries(ctx, node.inputs[1])
        if mode != "constant" and (entries is None or len(entries) != 2 * len(shape)):
            raise Refuse(f"runtime pads of unknown length with mode '{mode}'")
        return None
    for a, (b, e) in enumerate(pairs):
        d = shape[a]
        if (b < 0 or e < 0) and mode != "constant":
            raise Refuse(f"negative (cropping) pads with mode '{mode}'")
        if (b, e) == (0, 0) or mode == "constant":
            continue
        limit = {"reflect": -1, "edge": 0, "wrap": 0}[mode]  # MIL: reflect <= dim - 1, replicate <= dim
        if not isinstance(d, int):
            # a symbolic length is bounded from below by the inputs' RangeDim / EnumeratedShapes bounds
            bounds = ctx.dim_range(node.inputs[0], a)
            if bounds is not None and max(b, e) > bounds[0] + limit:
                raise Refuse(f"mode '{mode}' pads symbolic axis {a} by {max(b, e)}, but that axis can be as short as "
                        f"{bounds[0]} at the inputs' lower bounds (at most {bounds[0] + limit} is expressible): "
                        f"raise the lower bound of the input's RangeDim")
            # ONNX itself bounds reflect pads by dim - 1; edge and wrap are safe up to 1 on any dim
            if bounds is None and mode != "reflect" and max(b, e) > 1:
                raise Refuse(f"mode '{mode}' pads symbolic axis {a} by {max(b, e)} and shape inference gives no "
                        f"lower bound for its length: more than its size is not expressible")
            continue
        if max(b, e) > d + limit:
            raise Refuse(f"mode '{mode}' pads axis {a} of size {d} by {max(b, e)} (at most {d + limit})")
    if any(isinstance(d, int) and d + b + e <= 0 for d, (b, e) in zip(shape, pairs)):
        raise Refuse("pads crop an axis to nothing (CoreML has no zero-size tensors)")
