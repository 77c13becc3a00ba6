"""ONNX MaxPool / AveragePool / LpPool (1-D to 3-D) -> MIL ``max_pool`` / ``avg_pool`` with explicit
pads; GlobalAveragePool / GlobalMaxPool / GlobalLpPool -> reductions over the spatial axes.

ceil_mode becomes extra end padding that MIL's max ignores and its average excludes, so every rank
and asymmetric pads work (MIL's own ceil_mode is 1-D/2-D with symmetric pads only). MIL pools have
no dilation: a dilated window's taps are gathered side by side first (one gather per dilated dim),
and MaxPool's Indices come from a per-dim max and first-hit search; both emit a fixed number of ops
whatever the kernel size (static dims). LpPool sums |x|^p with an avg_pool times the kernel volume.
"""
from __future__ import annotations

from dataclasses import dataclass

import coremltools as ct
import numpy as np
from coremltools.converters.mil import Builder as mb
from coremltools.converters.mil.mil import types

from ..backend.convert.registry import op_builder
from ._common import const_like, input_refusal

_FLOATS = (np.float16, np.float32, np.float64)


@dataclass
class Window:
    """Pool geometry per spatial dim; ``pads`` are ONNX's (begin, end), ``extra`` the end padding
    ceil_mode adds past them, ``out`` the output size."""

    kernel: list
    strides: list
    dilations: list
    pads: list
    extra: list
    out: list

    def mil_pad(self, with_extra: bool = True) -> list:
        return [p for (b, e), x in zip(self.pads, self.extra) for p in (b, e + (x if with_extra else 0))]


def attrs(node, k: int):
    kernel = list(node.attr("kernel_shape"))
    strides = list(node.attr("strides") or [1] * k)
    dilations = list(node.attr("dilations") or [1] * k)
    return kernel, strides, dilations


def window(node, in_spatial) -> Window:
    """Output sizes and pads as the ONNX spec (and onnxruntime) compute them, for static dims."""
    k = len(in_spatial)
    kernel, strides, dilations = attrs(node, k)
    auto_pad = node.attr("auto_pad", "NOTSET")
    ceil = bool(node.attr("ceil_mode", 0))
    pads, out = [], []
    for i, n in enumerate(in_spatial):
        span = (kernel[i] - 1) * dilations[i] + 1
        if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            o = -(-n // strides[i])
            total = max(0, (o - 1) * strides[i] + span - n)
            small, big = total // 2, total - total // 2
            pads.append((small, big) if auto_pad == "SAME_UPPER" else (big, small))
        else:
            onnx_pads = list(node.attr("pads") or [0] * (2 * k)) if auto_pad == "NOTSET" else [0] * (2 * k)
            b, e = onnx_pads[i], onnx_pads[i + k]
            room = n + b + e - span
            o = (-(-room // strides[i]) if ceil else room // strides[i]) + 1
            if ceil and (o - 1) * strides[i] >= n + b:  # the last window may not start in the end pad
                o -= 1
            pads.append((b, e))
        out.append(o)
    extra = [max(0, (o - 1) * s + (kk - 1) * d + 1 - (n + b + e))
             for o, s, kk, d, n, (b, e) in zip(out, strides, kernel, dilations, in_spatial, pads)]
    return Window(kernel, strides, dilations, pads, extra, out)


def _static(dims) -> bool:
    return all(isinstance(d, int) for d in dims)


def _is_dilated(node) -> bool:
    dilations = node.attr("dilations")
    return bool(dilations and any(d != 1 for d in dilations))


def _with_indices(node) -> bool:
    return len(node.outputs) > 1 and bool(node.outputs[1])


def _dynamic_pad_type(node, k: int):
    """MIL pad_type and pad for input whose spatial dims are not static (ceil_mode=0 only)."""
    auto_pad = node.attr("auto_pad", "NOTSET")
    if auto_pad == "NOTSET":
        onnx_pads = list(node.attr("pads") or [0] * (2 * k))
        return "custom", [p for i in range(k) for p in (onnx_pads[i], onnx_pads[i + k])]
    return {"VALID": "valid", "SAME_UPPER": "same", "SAME_LOWER": "same_lower"}[auto_pad], [0] * (2 * k)


def _pool(node, ctx, x, op, name: str, **kwargs):
    """One MIL pool op over ``x`` with the node's kernel/strides and explicit or MIL-native pads."""
    k = x.rank - 2
    kernel, strides, _ = attrs(node, k)
    if _static(x.shape[2:]):
        pad_type, pad = "custom", window(node, list(x.shape[2:])).mil_pad()
    else:
        pad_type, pad = _dynamic_pad_type(node, k)
    if pad_type != "custom":
        return op(x=x, kernel_sizes=kernel, strides=strides, pad_type=pad_type, name=name, **kwargs)
    return op(x=x, kernel_sizes=kernel, strides=strides, pad_type="custom", pad=pad, name=name, **kwargs)


def _padded(ctx, x, win: Window, fill: float, out: str):
    """``x`` with the window's pads (ceil_mode's overhang included) filled with ``fill``."""
    if not any(win.mil_pad()):
        return x
    return mb.pad(x=x, pad=np.array(win.mil_pad(), dtype=np.int32), mode="constant",
                  constant_val=const_like(fill, x), name=ctx.scratch(f"{out}_padded"))


def _taps(win: Window, dim: int) -> np.ndarray:
    """[out, kernel] padded-input coordinates each output position reads along ``dim``."""
    return (np.arange(win.out[dim])[:, None] * win.strides[dim]
            + np.arange(win.kernel[dim])[None, :] * win.dilations[dim]).astype(np.int32)


def _window_count(win: Window, in_spatial, include_pad: bool) -> np.ndarray:
    """How many window elements onnxruntime divides by at each output position: a product over
    dims of how many taps land inside the input (or inside input + pads with count_include_pad)."""
    count = np.ones([], dtype=np.float64)
    for dim, n in enumerate(in_spatial):
        lo, hi = (0, n + sum(win.pads[dim])) if include_pad else (win.pads[dim][0], win.pads[dim][0] + n)
        taps = _taps(win, dim)
        count = np.multiply.outer(count, ((taps >= lo) & (taps < hi)).sum(axis=1))
    return count


def _dilated(node, ctx, x, kind: str, name: str):
    """A dilated pool in a fixed number of ops: pad, then per dilated dim one gather that lays each
    window's taps side by side ([out * kernel] along that dim), then one undilated MIL pool whose
    stride is its kernel on those dims (each window a block of its own) and the node's elsewhere.
    ``kind``: "max", "avg" (returns the average) or "lp" (returns the sum)."""
    out = node.outputs[0]
    in_spatial = list(x.shape[2:])
    win = window(node, in_spatial)
    y = _padded(ctx, x, win, -np.inf if kind == "max" else 0.0, out)
    dilated = [i for i, d in enumerate(win.dilations) if d != 1]
    # gather the dim that grows least (out * kernel against its padded length) first
    for dim in sorted(dilated, key=lambda i: win.out[i] * win.kernel[i] / y.shape[2 + i]):
        y = mb.gather(x=y, indices=_taps(win, dim).reshape(-1), axis=2 + dim,
                      name=ctx.scratch(f"{out}_taps_{dim}"))
    strides = [k if d != 1 else s for k, s, d in zip(win.kernel, win.strides, win.dilations)]
    if kind == "max":
        return mb.max_pool(x=y, kernel_sizes=win.kernel, strides=strides, pad_type="valid", name=name)
    mean = mb.avg_pool(x=y, kernel_sizes=win.kernel, strides=strides, pad_type="valid",
                       name=ctx.scratch(f"{out}_mean"))
    volume = float(np.prod(win.kernel))
    if kind == "lp":
        return mb.mul(x=mean, y=const_like(volume, x), name=ctx.scratch(f"{out}_sum"))
    count = _window_count(win, in_spatial, bool(node.attr("count_include_pad", 0)))
    return mb.mul(x=mean, y=const_like(volume / count, x), name=name)


def _max_with_indices(node, ctx, x, name: str):
    """MaxPool's values and Indices, one dim at a time (a max over a box is a max of per-dim maxes):
    per dim, one gather lays each window's taps on a new axis, a max reduces it, and the first tap
    that attains the max (onnxruntime's row-major first, found without reduce_argmax, whose ties
    MIL leaves unspecified) gives the coordinate; coordinates of dims already reduced are carried
    along with gather_along_axis. A fixed number of ops per spatial dim."""
    out = node.outputs[0]
    in_spatial = list(x.shape[2:])
    k = len(in_spatial)
    win = window(node, in_spatial)
    n, c = x.shape[:2]
    y = _padded(ctx, x, win, -np.inf, out)
    lead = 2
    if k == 3:  # the taps axis would make rank 6: fold N and C (static for Indices) into one
        y = mb.reshape(x=y, shape=[n * c] + list(y.shape[2:]), name=ctx.scratch(f"{out}_nc"))
        lead = 1
    coords = {}
    # the last dim first: the dim searched last decides ties first, and row-major order puts dim 0 first
    for dim in reversed(range(k)):
        axis = lead + dim
        rest = [1] * (k - 1 - dim)
        taps = mb.gather(x=y, indices=_taps(win, dim), axis=axis, name=ctx.scratch(f"{out}_taps_{dim}"))
        top = mb.reduce_max(x=taps, axes=[axis + 1], keep_dims=True, name=ctx.scratch(f"{out}_top_{dim}"))
        hit = mb.cast(x=mb.equal(x=taps, y=top, name=ctx.scratch(f"{out}_hit_{dim}")), dtype="int32",
                      name=ctx.scratch(f"{out}_hit_int_{dim}"))
        # earlier taps weigh more, so the hit with the largest weight is the first and unique
        weight = np.arange(win.kernel[dim], 0, -1, dtype=np.int32).reshape([-1] + rest)
        first = mb.reduce_argmax(x=mb.mul(x=hit, y=weight, name=ctx.scratch(f"{out}_first_hit_{dim}")),
                                 axis=axis + 1, keep_dims=False, name=ctx.scratch(f"{out}_tap_{dim}"))
        y = mb.squeeze(x=top, axes=[axis + 1], name=ctx.scratch(f"{out}_max_{dim}"))
        start = (np.arange(win.out[dim]) * win.strides[dim]).astype(np.int32).reshape([-1] + rest)
        at = mb.add(x=mb.mul(x=first, y=np.int32(win.dilations[dim]), name=ctx.scratch(f"{out}_offset_{dim}")),
                    y=start, name=ctx.scratch(f"{out}_at_{dim}"))
        for d in coords:
            coords[d] = mb.gather_along_axis(x=coords[d], indices=at, axis=axis,
                                             name=ctx.scratch(f"{out}_at_{d}_by_{dim}"))
        coords[dim] = at
    order = range(k - 1, -1, -1) if node.attr("storage_order", 0) == 1 else range(k)
    step, strides = 1, {}
    for dim in reversed(list(order)):
        strides[dim], step = step, step * in_spatial[dim]
    flat = None
    for dim in range(k):
        term = mb.mul(x=coords[dim], y=np.int32(strides[dim]), name=ctx.scratch(f"{out}_flat_{dim}"))
        flat = term if flat is None else mb.add(x=flat, y=term, name=ctx.scratch(f"{out}_flat_upto_{dim}"))
    # from padded to input coordinates, plus (n * C + c) * volume as onnxruntime counts
    volume = int(np.prod(in_spatial))
    base = np.arange(n * c, dtype=np.int64) * volume - sum(win.pads[d][0] * strides[d] for d in range(k))
    if k == 3:
        flat = mb.reshape(x=flat, shape=[n, c] + win.out, name=ctx.scratch(f"{out}_index_flat"))
        y = mb.reshape(x=y, shape=[n, c] + win.out, name=name)
    elif y.name != name:
        y = mb.identity(x=y, name=name)
    index = mb.add(x=flat, y=base.astype(np.int32).reshape([n, c] + [1] * k), name=ctx.mil_name(node.outputs[1]))
    return y, index


@op_builder("MaxPool")
def max_pool(node, ctx):
    x = ctx.input(node, 0)
    out = node.outputs[0]
    integer = not types.is_float(x.dtype)
    if integer:  # int8/uint8 (int32 in MIL): pooled in fp32, exact below 2**24
        x = mb.cast(x=x, dtype="fp32", name=ctx.scratch(f"{out}_fp32"))
    name = ctx.scratch(f"{out}_pooled") if integer else ctx.mil_name(out)
    if _with_indices(node):
        y, *indices = _max_with_indices(node, ctx, x, name)
    elif _is_dilated(node):
        y, indices = _dilated(node, ctx, x, "max", name), []
    else:
        y, indices = _pool(node, ctx, x, mb.max_pool, name), []
    if integer:
        y = mb.cast(x=y, dtype=types.builtin_to_string(ctx.input(node, 0).dtype), name=ctx.mil_name(out))
    ctx.set_output(node, y, *indices)


@op_builder("AveragePool")
def average_pool(node, ctx):
    x = ctx.input(node, 0)
    out = node.outputs[0]
    if _is_dilated(node):
        ctx.set_output(node, _dilated(node, ctx, x, "avg", ctx.mil_name(out)))
        return
    include_pad = bool(node.attr("count_include_pad", 0))
    pads = _fixed_pads(node, x)
    if not include_pad or pads is None:
        ctx.set_output(node, _pool(node, ctx, x, mb.avg_pool, ctx.mil_name(out), exclude_padding_from_average=not include_pad))
        return
    # Padding that counts in the average is added as zeros before a pool that pads nothing itself:
    # Core ML averages some padded windows wrongly (coremltools#1901), and MIL would also count
    # ceil_mode's overhang, which onnxruntime does not (coremltools#2772); the overhang stays a
    # MIL pad that the average excludes.
    pads, extra = pads
    kernel, strides, _ = attrs(node, x.rank - 2)
    y = mb.avg_pool(x=_zero_pad(ctx, x, pads, out), kernel_sizes=kernel, strides=strides, pad_type="custom",
                    pad=[p for e in extra for p in (0, e)], exclude_padding_from_average=True, name=ctx.mil_name(out))
    ctx.set_output(node, y)


def _fixed_pads(node, x):
    """(MIL [begin, end] pads, ceil_mode overhang per dim) when they do not depend on runtime dims."""
    k = x.rank - 2
    if _static(x.shape[2:]):
        win = window(node, list(x.shape[2:]))
        return win.mil_pad(with_extra=False), win.extra
    if node.attr("auto_pad", "NOTSET") == "NOTSET":  # dynamic dims: ceil_mode was refused
        return _dynamic_pad_type(node, k)[1], [0] * k
    return None


def _zero_pad(ctx, x, pads, out: str):
    """``x`` with MIL [begin, end] zero pads on its spatial dims (``x`` itself if all are 0)."""
    if not any(pads):
        return x
    return mb.pad(x=x, pad=np.array(pads, dtype=np.int32), mode="constant", constant_val=const_like(0, x),
                  name=ctx.scratch(f"{out}_padded"))


@op_builder("LpPool")
def lp_pool(node, ctx):
    x = ctx.input(node, 0)
    out = node.outputs[0]
    p = float(node.attr("p"))
    powered = _power(ctx, x, p, out)
    if _is_dilated(node):
        total = _dilated(node, ctx, powered, "lp", ctx.scratch(f"{out}_sum"))
    else:
        fixed = _fixed_pads(node, x)
        if fixed is None:  # SAME/VALID on runtime dims: MIL pads
            mean = _pool(node, ctx, powered, mb.avg_pool, ctx.scratch(f"{out}_mean"), exclude_padding_from_average=False)
        else:  # zeros padded explicitly (coremltools#1901), then a pool that pads nothing
            pads, extra = fixed
            end_extra = [e if j % 2 else 0 for e in extra for j in (0, 1)]
            padded = _zero_pad(ctx, powered, [p + e for p, e in zip(pads, end_extra)], out)
            kernel, strides, _ = attrs(node, x.rank - 2)
            mean = mb.avg_pool(x=padded, kernel_sizes=kernel, strides=strides, pad_type="valid",
                               name=ctx.scratch(f"{out}_mean"))
        volume = int(np.prod(node.attr("kernel_shape")))
        total = mb.mul(x=mean, y=const_like(volume, x), name=ctx.scratch(f"{out}_sum"))
    ctx.set_output(node, _root(ctx, total, p, ctx.mil_name(out)))


def _power(ctx, x, p: float, out: str):
    """|x|^p, with the exact op for p = 1 and 2."""
    if p == 2:
        return mb.mul(x=x, y=x, name=ctx.scratch(f"{out}_squared"))
    magnitude = mb.abs(x=x, name=ctx.scratch(f"{out}_abs"))
    if p == 1:
        return magnitude
    return mb.pow(x=magnitude, y=const_like(p, x), name=ctx.scratch(f"{out}_pow"))


def _root(ctx, total, p: float, name: str):
    if p == 1:
        return mb.identity(x=total, name=name)
    if p == 2:
        return mb.sqrt(x=total, name=name)
    return mb.pow(x=total, y=const_like(1.0 / p, total), name=name)


@max_pool.check
@average_pool.check
@lp_pool.check
def _(node, ctx):
    shape = ctx.shape(node.inputs[0])
    if shape is None or not 3 <= len(shape) <= 5:
        return "input must be rank 3-5 (1-D to 3-D pooling in MIL)"
    dtype = ctx.dtype(node.inputs[0])
    if dtype not in _FLOATS and not (node.op_type == "MaxPool" and dtype in (np.int8, np.uint8)):
        return f"input dtype {dtype} (MIL pools take fp16/fp32 only)"
    kernel = node.attr("kernel_shape")
    if not kernel or len(kernel) != len(shape) - 2:
        return f"kernel_shape {kernel} does not match the {len(shape) - 2} spatial dims"
    auto_pad = node.attr("auto_pad", "NOTSET")
    dilations = node.attr("dilations") or []
    if auto_pad.startswith("SAME") and any(d != 1 for d in dilations):
        return ("auto_pad SAME_* with dilations: onnxruntime pads for the undilated kernel while the "
                "ONNX spec pads for the dilated one; give explicit pads")
    static = _static(shape[2:])
    if not static:
        if node.attr("ceil_mode", 0):
            return "ceil_mode needs static spatial dims (it becomes explicit end padding)"
        if _is_dilated(node) or _with_indices(node):
            return "dilations and the Indices output need static spatial dims"
        if auto_pad == "SAME_LOWER" and ctx.target < ct.target.iOS16:
            return "SAME_LOWER with dynamic spatial dims needs minimum_deployment_target >= iOS16"
    if len(node.outputs) > 1 and node.outputs[1] and not _static(shape[:2]):
        return "the Indices output needs static batch and channel dims"
    if node.op_type == "LpPool" and node.attr("p") is not None and node.attr("p") <= 0:
        return f"p={node.attr('p')} must be positive"
    return None


@op_builder("GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool")
def global_pool(node, ctx):
    x = ctx.input(node, 0)
    out = node.outputs[0]
    axes = list(range(2, x.rank))
    if node.op_type == "GlobalAveragePool":
        y = mb.reduce_mean(x=x, axes=axes, keep_dims=True, name=ctx.mil_name(out))
    elif node.op_type == "GlobalMaxPool":
        y = mb.reduce_max(x=x, axes=axes, keep_dims=True, name=ctx.mil_name(out))
    else:
        p = float(node.attr("p"))
        if p == 2:
            y = mb.reduce_l2_norm(x=x, axes=axes, keep_dims=True, name=ctx.mil_name(out))
        elif p == 1:
            y = mb.reduce_l1_norm(x=x, axes=axes, keep_dims=True, name=ctx.mil_name(out))
        else:
            total = mb.reduce_sum(x=_power(ctx, x, p, out), axes=axes, keep_dims=True,
                                  name=ctx.scratch(f"{out}_sum"))
            y = _root(ctx, total, p, ctx.mil_name(out))
    ctx.set_output(node, y)


@global_pool.check
def _(node, ctx):
    refusal = input_refusal(ctx, node.inputs[0], min_rank=3, what="reduces")
    if refusal:
        return refusal
    if node.op_type == "GlobalLpPool" and node.attr("p") <= 0:
        return f"p={node.attr('p')} must be positive"
    return None
