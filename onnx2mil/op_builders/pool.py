"""ONNX MaxPool / AveragePool / LpPool (1-D to 3-D) -> MIL ``max_pool`` / ``avg_pool`` with explicit
pads; GlobalAveragePool / GlobalMaxPool / GlobalLpPool -> reductions over the spatial axes.

ceil_mode becomes extra end padding that MIL's max ignores and its average excludes, so every rank
and asymmetric pads work (MIL's own ceil_mode is 1-D/2-D with symmetric pads only). Dilated windows
and MaxPool's Indices output are gathered as one strided slice per kernel offset (static dims).
LpPool sums |x|^p with an avg_pool times the kernel volume.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import coremltools as ct
import numpy as np
from coremltools.converters.mil import Builder as mb
from coremltools.converters.mil.mil import types

from ..backend.convert.registry import op_builder
from .batch_norm import const_like, input_refusal

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


def _needs_gather(node) -> bool:
    dilations = node.attr("dilations")
    return bool(dilations and any(d != 1 for d in dilations)) or (len(node.outputs) > 1 and bool(node.outputs[1]))


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


def _offsets(win: Window, x, fill: float, out: str, ctx):
    """(kernel offset, slice of the padded input) per kernel offset, in row-major offset order."""
    xp = mb.pad(x=x, pad=np.array(win.mil_pad(), dtype=np.int32), mode="constant",
                constant_val=const_like(fill, x), name=ctx.scratch(f"{out}_padded"))
    k = len(win.kernel)
    for offset in itertools.product(*(range(n) for n in win.kernel)):
        begin = [0, 0] + [j * d for j, d in zip(offset, win.dilations)]
        end = [0, 0] + [b + (o - 1) * s + 1 for b, o, s in zip(begin[2:], win.out, win.strides)]
        yield offset, mb.slice_by_index(
            x=xp, begin=begin, end=end, stride=[1, 1] + win.strides,
            begin_mask=[True, True] + [False] * k, end_mask=[True, True] + [False] * k,
            name=ctx.scratch(f"{out}_window_{'_'.join(map(str, offset))}"))


def _positions(win: Window, offset, dim: int) -> np.ndarray:
    """Input coordinate read at each output position along ``dim`` for one kernel offset."""
    return np.arange(win.out[dim]) * win.strides[dim] + offset[dim] * win.dilations[dim] - win.pads[dim][0]


def _window_count(win: Window, in_spatial, include_pad: bool) -> np.ndarray:
    """How many window elements onnxruntime divides by at each output position."""
    count = np.zeros(win.out, dtype=np.float64)
    for offset in itertools.product(*(range(n) for n in win.kernel)):
        inside = np.ones(win.out, dtype=bool)
        for dim, n in enumerate(in_spatial):
            lo, hi = (-win.pads[dim][0], n + win.pads[dim][1]) if include_pad else (0, n)
            p = _positions(win, offset, dim)
            shape = [1] * len(win.out)
            shape[dim] = -1
            inside = inside & ((p >= lo) & (p < hi)).reshape(shape)
        count += inside
    return count


def _flat_index(win: Window, offset, in_spatial, column_major: bool) -> np.ndarray:
    """Flattened spatial input index (row- or column-major) read at each output position."""
    grids = np.meshgrid(*(np.clip(_positions(win, offset, d), 0, n - 1) for d, n in enumerate(in_spatial)),
                        indexing="ij")
    return np.ravel_multi_index(grids, in_spatial, order="F" if column_major else "C").astype(np.int32)


def _gathered(node, ctx, x, kind: str, name: str = None):
    """Pool by combining one strided slice per kernel offset (dilations, MaxPool Indices); ``name``
    is the value output's MIL name (the ONNX output's by default)."""
    out = node.outputs[0]
    name = name or ctx.mil_name(out)
    in_spatial = list(x.shape[2:])
    win = window(node, in_spatial)
    if kind == "max":
        with_indices = len(node.outputs) > 1 and bool(node.outputs[1])
        column_major = node.attr("storage_order", 0) == 1
        acc = index = None
        slices = list(_offsets(win, x, -np.inf, out, ctx))
        for i, (offset, v) in enumerate(slices):
            last = i == len(slices) - 1
            flat = _flat_index(win, offset, in_spatial, column_major) if with_indices else None
            if acc is None:
                # MIL select's output shape broadcasts a and b only (not cond): start full-shaped.
                acc = v
                index = None if flat is None else np.ascontiguousarray(np.broadcast_to(flat, x.shape[:2] + flat.shape))
                continue
            if with_indices:
                better = mb.greater(x=v, y=acc, name=ctx.scratch(f"{out}_better_{i}"))
                index = mb.select(cond=better, a=flat, b=index, name=ctx.scratch(f"{out}_argmax_{i}"))
            acc = mb.maximum(x=acc, y=v, name=name if last else ctx.scratch(f"{out}_max_{i}"))
        if not with_indices:
            return (acc,)
        n, c = x.shape[:2]
        volume = int(np.prod(in_spatial))
        base = (np.arange(n * c, dtype=np.int64) * volume).reshape([n, c] + [1] * len(in_spatial))
        return acc, mb.add(x=index, y=base.astype(np.int32), name=ctx.mil_name(node.outputs[1]))
    total = None
    for i, (_, v) in enumerate(_offsets(win, x, 0.0, out, ctx)):
        total = v if total is None else mb.add(x=total, y=v, name=ctx.scratch(f"{out}_sum_{i}"))
    if kind == "lp":
        return (total,)
    count = _window_count(win, in_spatial, bool(node.attr("count_include_pad", 0)))
    return (mb.real_div(x=total, y=const_like(count, x), name=name),)


@op_builder("MaxPool")
def max_pool(node, ctx):
    x = ctx.input(node, 0)
    out = node.outputs[0]
    integer = not types.is_float(x.dtype)
    if integer:  # int8/uint8 (int32 in MIL): pooled in fp32, exact below 2**24
        x = mb.cast(x=x, dtype="fp32", name=ctx.scratch(f"{out}_fp32"))
    if _needs_gather(node):
        y, *indices = _gathered(node, ctx, x, "max", ctx.scratch(f"{out}_pooled") if integer else ctx.mil_name(out))
    else:
        y, indices = _pool(node, ctx, x, mb.max_pool, ctx.scratch(f"{out}_pooled") if integer else ctx.mil_name(out)), []
    if integer:
        y = mb.cast(x=y, dtype=types.builtin_to_string(ctx.input(node, 0).dtype), name=ctx.mil_name(out))
    ctx.set_output(node, y, *indices)


@op_builder("AveragePool")
def average_pool(node, ctx):
    x = ctx.input(node, 0)
    out = node.outputs[0]
    if _needs_gather(node):
        ctx.set_output(node, *_gathered(node, ctx, x, "avg"))
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
    if _needs_gather(node):
        (total,) = _gathered(node, ctx, powered, "lp")
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
        if _needs_gather(node):
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
