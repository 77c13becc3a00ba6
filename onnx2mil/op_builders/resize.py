"""ONNX Resize (opset 10-19+: scales or sizes, axes, every coordinate_transformation_mode but
tf_crop_and_resize, nearest_mode) and Upsample (7-9) in nearest and linear modes.

The ONNX sampling grid of each resized axis is computed here (float32, as onnxruntime does) and
matched against what MIL expresses: ``upsample_nearest_neighbor`` (integer factors), a strided
``slice_by_index`` (integer downsampling), ``resize_bilinear`` (a sampling_mode with the same
grid), ``upsample_bilinear`` (integer scales of symbolic dims); any other grid is emitted exactly
as constant-index ``gather``s (and a lerp for linear).
Cubic and antialiased downsampling are refused.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Union

import coremltools as ct
import numpy as np
from coremltools.converters.mil import Builder as mb

from ..backend.convert.registry import op_builder

_F = np.float32
_SAMPLE_SIZES = range(1, 10)  # input lengths tried when a dim is symbolic


@dataclass
class ResizeSpec:
    mode: str
    coord: str
    nearest: str
    in_shape: tuple
    scales: list          # per axis (float32), 1.0 where not resized
    out_shape: list       # per axis; None where the input dim is symbolic and not resized
    resized: list = field(default_factory=list)


def source_coordinates(coord: str, i: np.ndarray, n_in: int, n_out: int, scale) -> np.ndarray:
    """ONNX coordinate_transformation_mode: output index -> input coordinate (float32)."""
    scale = _F(scale)
    i = i.astype(_F)
    if coord == "half_pixel":
        return (i + _F(0.5)) / scale - _F(0.5)
    if coord == "half_pixel_symmetric":
        adjustment = _F(n_out) / (_F(n_in) * scale)
        offset = _F(n_in) / _F(2) * (_F(1) - adjustment)
        return offset + (i + _F(0.5)) / scale - _F(0.5)
    if coord == "pytorch_half_pixel":
        return (i + _F(0.5)) / scale - _F(0.5) if n_out > 1 else np.zeros_like(i)
    if coord == "align_corners":
        return i * _F(n_in - 1) / _F(n_out - 1) if n_out > 1 else np.zeros_like(i)
    if coord == "asymmetric":
        return i / scale
    if coord == "tf_half_pixel_for_nn":
        return (i + _F(0.5)) / scale
    raise ValueError(f"coordinate_transformation_mode '{coord}'")


def nearest_indices(spec: ResizeSpec, n_in: int, n_out: int, scale) -> np.ndarray:
    x = source_coordinates(spec.coord, np.arange(n_out), n_in, n_out, scale).astype(np.float64)
    if spec.nearest == "simple":  # Resize-10/Upsample, as onnxruntime reads them: ceil when downsampling
        idx = np.ceil(x) if scale < 1 else np.floor(x)
    elif spec.nearest == "floor":
        idx = np.floor(x)
    elif spec.nearest == "ceil":
        idx = np.ceil(x)
    else:
        half = (x - np.floor(x)) == 0.5
        tie = np.floor(x) if spec.nearest == "round_prefer_floor" else np.ceil(x)
        idx = np.where(half, tie, np.round(x))
    return np.clip(idx, 0, n_in - 1).astype(np.int32)


def linear_coordinates(spec: ResizeSpec, n_in: int, n_out: int, scale) -> np.ndarray:
    x = source_coordinates(spec.coord, np.arange(n_out), n_in, n_out, scale).astype(np.float64)
    return np.clip(x, 0, n_in - 1)


def mil_grid(sampling_mode: str, n_in: int, n_out: int) -> Optional[np.ndarray]:
    """resize_bilinear's sampling grid (its docstring), or None where it is undefined."""
    i = np.arange(n_out, dtype=np.float64)
    if sampling_mode == "ALIGN_CORNERS":
        points = i * (n_in - 1) / (n_out - 1) if n_out > 1 else np.full(1, (n_in - 1) / 2)
    elif sampling_mode == "DEFAULT":
        if n_out == 1:
            return None
        points = i * (n_in - n_in / n_out) / (n_out - 1)
    else:  # UNALIGN_CORNERS
        points = i * n_in / n_out + 0.5 * n_in / n_out - 0.5
    return np.clip(points, 0, n_in - 1)


# ---- parsing ------------------------------------------------------------------------------------
def _spec(node, ctx) -> Union[ResizeSpec, str]:
    shape = ctx.shape(node.inputs[0])
    if shape is None:
        return "input rank is unknown"
    rank = len(shape)
    mode = node.attr("mode", "nearest")
    if node.op_type == "Upsample" or node.opset < 11:
        coord, nearest = "asymmetric", "simple"
    else:
        coord = node.attr("coordinate_transformation_mode", "half_pixel")
        nearest = node.attr("nearest_mode", "round_prefer_floor")
    if mode not in ("nearest", "linear", "bilinear"):
        return f"mode '{mode}' (cubic and others are not expressible in MIL)"
    if coord == "tf_crop_and_resize":
        return "coordinate_transformation_mode 'tf_crop_and_resize' (roi cropping) is not supported"
    policy = "stretch"
    if node.opset >= 18 and node.op_type == "Resize":
        policy = node.attr("keep_aspect_ratio_policy", "stretch")
    if policy not in ("stretch", "not_larger", "not_smaller"):
        return f"keep_aspect_ratio_policy '{policy}'"
    scales, sizes = _scales_sizes(node, ctx)
    if isinstance(scales, str):
        return scales
    axes = node.attr("axes") if node.opset >= 18 and node.op_type == "Resize" else None
    axes = list(range(rank)) if axes is None else [a + rank if a < 0 else a for a in axes]
    full_scales, out_shape = [_F(1)] * rank, list(shape)
    if sizes is not None:
        if len(sizes) != len(axes):
            return f"{len(sizes)} sizes for {len(axes)} axes"
        if policy != "stretch":  # one scale for every axis, output sizes rounded half up
            if any(not isinstance(shape[a], int) for a in axes):
                return f"keep_aspect_ratio_policy '{policy}' with symbolic dims"
            ratios = [_F(n) / _F(shape[a]) for a, n in zip(axes, sizes)]
            scale = min(ratios) if policy == "not_larger" else max(ratios)
            sizes = [int(np.float64(scale) * shape[a] + 0.5) for a in axes]
        for a, n in zip(axes, sizes):
            if n != shape[a] or policy != "stretch":
                if not isinstance(shape[a], int):
                    return f"sizes on symbolic axis {a}: the scale is unknown"
                full_scales[a] = scale if policy != "stretch" else _F(n) / _F(shape[a])
                out_shape[a] = int(n)
    else:
        if len(scales) != len(axes):
            return f"{len(scales)} scales for {len(axes)} axes"
        for a, s in zip(axes, scales):
            full_scales[a] = _F(s)
            if isinstance(shape[a], int):
                out_shape[a] = int(np.floor(shape[a] * np.float64(_F(s))))
            elif s != 1:
                out_shape[a] = None
    if any(s <= 0 for s in full_scales) or any(isinstance(d, int) and d < 1 for d in out_shape):
        return "scales/sizes give an empty output (CoreML has no zero-size tensors)"
    resized = [a for a in range(rank) if full_scales[a] != 1 or out_shape[a] != shape[a]]
    if (mode != "nearest" and node.opset >= 18 and node.attr("antialias", 0)
            and any(full_scales[a] < 1 for a in resized)):
        return "antialiased linear downsampling is not expressible in MIL"
    spec = ResizeSpec("nearest" if mode == "nearest" else "linear", coord, nearest, tuple(shape), full_scales,
                      out_shape, resized)
    if spec.mode == "nearest" and nearest not in ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil",
                                                  "simple"):
        return f"nearest_mode '{nearest}'"
    return spec


def _scales_sizes(node, ctx):
    """(scales, sizes) as lists (one of them None), or (reason, None)."""
    if node.op_type == "Upsample" and node.opset < 9:
        return [float(s) for s in node.attr("scales")], None
    scales_index = 1 if node.op_type == "Upsample" or node.opset < 11 else 2
    if node.has_input(scales_index):
        value = ctx.const(node.inputs[scales_index])
        if value is None:
            return ctx.const_refusal(node.inputs[scales_index], "scales"), None
        if value.size:
            return [float(s) for s in value.reshape(-1)], None
    if node.op_type == "Resize" and node.opset >= 11 and node.has_input(3):
        value = ctx.const(node.inputs[3])
        if value is None:
            factors = _integer_factors(node, ctx)
            if factors is None:
                return ctx.const_refusal(node.inputs[3], "sizes", "or an integer multiple of the input's dims "
                                         "(the same at the inputs' lower and upper bounds)"), None
            return factors, None
        return None, [int(s) for s in value.reshape(-1)]
    return "neither scales nor sizes are given", None


def _integer_factors(node, ctx) -> Optional[list]:
    """Runtime sizes (e.g. ``floor(shape(x) * 2)`` from a symbolic length) as constant scales: per
    axis, the same integer ratio sizes / input dim at the inputs' lower and upper bounds (the
    graph folded at each); ONNX's scale out/in is then exactly that integer."""
    if node.attr("axes") is not None or node.opset >= 18 and node.attr("keep_aspect_ratio_policy", "stretch") != "stretch":
        return None
    sizes, shapes = ctx.values_at_bounds(node.inputs[3]), ctx.shape_at_bounds(node.inputs[0])
    if sizes is None or shapes is None or any(len(v.reshape(-1)) != len(sh) for v, sh in zip(sizes, shapes)):
        return None
    factors = []
    for k, dims in enumerate(zip(*(v.reshape(-1) for v in sizes), *shapes)):
        (out_lo, out_hi), (in_lo, in_hi) = dims[:2], dims[2:]
        if out_lo % in_lo or out_hi % in_hi or out_lo // in_lo != out_hi // in_hi or out_lo < in_lo:
            return None
        factors.append(float(out_lo // in_lo))
    return factors


# ---- planning: which MIL op each resized axis becomes ------------------------------------------
@dataclass
class AxisPlan:
    kind: str                 # "up" (integer factor), "slice" (offset, stride), "gather", "lerp"
    factor: int = 1
    offset: int = 0
    indices: Optional[np.ndarray] = None
    low: Optional[np.ndarray] = None
    high: Optional[np.ndarray] = None
    weight: Optional[np.ndarray] = None


def _nearest_plan(spec: ResizeSpec, a: int) -> Union[AxisPlan, str]:
    n_in, n_out, s = spec.in_shape[a], spec.out_shape[a], spec.scales[a]
    factor = int(round(float(s)))
    if not isinstance(n_in, int):  # symbolic: only an integer factor whose grid is i // factor
        if factor < 1 or _F(factor) != s:
            return f"nearest resize of symbolic axis {a} needs an integer scale"
        for n in _SAMPLE_SIZES:
            if not np.array_equal(nearest_indices(spec, n, n * factor, s), np.arange(n * factor) // factor):
                return (f"nearest resize of symbolic axis {a}: the {spec.coord}/{spec.nearest} grid depends on "
                        "the input size")
        return AxisPlan("up", factor=factor)
    idx = nearest_indices(spec, n_in, n_out, s)
    if factor >= 1 and n_out == n_in * factor and np.array_equal(idx, np.arange(n_out) // factor):
        return AxisPlan("up", factor=factor)
    step = int(idx[1] - idx[0]) if n_out > 1 else 1
    if step >= 1 and np.array_equal(idx, idx[0] + step * np.arange(n_out)):
        return AxisPlan("slice", factor=step, offset=int(idx[0]))
    return AxisPlan("gather", indices=idx)


def _linear_plan(spec: ResizeSpec, a: int) -> Union[AxisPlan, str]:
    n_in, n_out, s = spec.in_shape[a], spec.out_shape[a], spec.scales[a]
    if not isinstance(n_in, int):
        return (f"linear resize of symbolic axis {a} needs integer scales on the last two dims with "
                "half_pixel/pytorch_half_pixel, align_corners (scales >= 2) or asymmetric (iOS16+)")
    x = linear_coordinates(spec, n_in, n_out, s)
    low = np.floor(x).astype(np.int32)
    high = np.minimum(low + 1, n_in - 1).astype(np.int32)
    return AxisPlan("lerp", low=low, high=high, weight=(x - low).astype(np.float32))


def _bilinear_mode(spec: ResizeSpec) -> Optional[str]:
    """A resize_bilinear sampling_mode whose grid equals ONNX's on both of the last two axes."""
    rank = len(spec.in_shape)
    if rank < 3 or any(a < rank - 2 for a in spec.resized):
        return None
    dims = [(spec.in_shape[a], spec.out_shape[a], spec.scales[a]) for a in (rank - 2, rank - 1)]
    if any(not isinstance(n, int) for n, _, _ in dims):
        return None
    for mode in ("UNALIGN_CORNERS", "ALIGN_CORNERS", "DEFAULT"):
        grids = [mil_grid(mode, n_in, n_out) for n_in, n_out, _ in dims]
        onnx = [linear_coordinates(spec, n_in, n_out, s) for n_in, n_out, s in dims]
        if all(g is not None and np.allclose(g, o, atol=1e-5) for g, o in zip(grids, onnx)):
            return mode
    return None


def _symbolic_upsample_bilinear(spec: ResizeSpec, target) -> Optional[dict]:
    """upsample_bilinear arguments for integer scales of symbolic last two dims: its grid uses the
    recomputed spacing in/out = 1/scale, which is ONNX's when the scale is an integer."""
    rank = len(spec.in_shape)
    last_two = [spec.scales[rank - 2], spec.scales[rank - 1]]
    if rank < 3 or any(a < rank - 2 for a in spec.resized) or any(s < 1 or _F(round(s)) != s for s in last_two):
        return None
    scales = dict(scale_factor_height=int(last_two[0]), scale_factor_width=int(last_two[1]))
    if spec.coord in ("half_pixel", "pytorch_half_pixel", "half_pixel_symmetric"):
        return dict(align_corners=False, **scales)
    if spec.coord == "align_corners" and min(last_two) >= 2:  # (in-1)/(out-1): out > 1 on both axes
        return dict(align_corners=True, **scales)
    if spec.coord == "asymmetric" and target >= ct.target.iOS16:
        return dict(align_corners=False, half_pixel_centers=False, **scales)
    return None


def plan(node, ctx):
    """(spec, {axis: AxisPlan}, resize_bilinear sampling_mode / upsample_bilinear arguments or None),
    or a refusal reason."""
    spec = _spec(node, ctx)
    if isinstance(spec, str):
        return spec
    plans = {}
    if spec.mode == "linear":
        mode = _bilinear_mode(spec)
        if mode is None and any(not isinstance(spec.in_shape[a], int) for a in spec.resized):
            mode = _symbolic_upsample_bilinear(spec, ctx.target)
        if mode is not None:
            return spec, {}, mode
    for a in spec.resized:
        p = (_nearest_plan if spec.mode == "nearest" else _linear_plan)(spec, a)
        if isinstance(p, str):
            return p
        plans[a] = p
    rank = len(spec.in_shape)
    for a, p in list(plans.items()):
        if p.kind == "up" and (rank < 3 or a < rank - 2):  # outside upsample's last two dims: gather
            if not isinstance(spec.in_shape[a], int):
                return f"nearest upsampling of symbolic axis {a} outside the last two dims of a rank >= 3 input"
            plans[a] = AxisPlan("gather", indices=np.arange(spec.out_shape[a], dtype=np.int32) // p.factor)
    return spec, plans, None


# ---- emission -----------------------------------------------------------------------------------
def _emit(node, ctx):
    x = ctx.input(node, 0)

    spec, plans, bilinear = plan(node, ctx)
    rank = x.rank
    steps = []
    if isinstance(bilinear, dict):
        steps.append(lambda v, name: mb.upsample_bilinear(x=v, name=name, **bilinear))
    elif bilinear is not None:
        steps.append(lambda v, name: mb.resize_bilinear(
            x=v, target_size_height=spec.out_shape[-2], target_size_width=spec.out_shape[-1],
            sampling_mode=bilinear, name=name))
    slices = {a: p for a, p in plans.items() if p.kind == "slice"}
    if slices:
        begin = [slices[a].offset if a in slices else 0 for a in range(rank)]
        stride = [slices[a].factor if a in slices else 1 for a in range(rank)]
        end = [slices[a].offset + slices[a].factor * (spec.out_shape[a] - 1) + 1 if a in slices else 0
               for a in range(rank)]
        mask = [a not in slices for a in range(rank)]
        steps.append(lambda v, name: mb.slice_by_index(x=v, begin=begin, end=end, stride=stride,
                                                       begin_mask=mask, end_mask=mask, name=name))
    for a, p in plans.items():
        if p.kind == "gather":
            steps.append(lambda v, name, a=a, p=p: mb.gather(x=v, indices=p.indices, axis=a, name=name))
        elif p.kind == "lerp":
            steps.append(lambda v, name, a=a, p=p: _lerp(v, a, p, ctx.tmp, name))
    ups = {a: p.factor for a, p in plans.items() if p.kind == "up"}
    if ups:
        steps.append(lambda v, name: mb.upsample_nearest_neighbor(
            x=v, scale_factor_height=ups.get(rank - 2, 1), scale_factor_width=ups.get(rank - 1, 1), name=name))
    if not steps:
        steps.append(lambda v, name: mb.identity(x=v, name=name))
    for n, step in enumerate(steps):
        x = step(x, ctx.tmp(f"step{n}"))
    ctx.set_output(node, x)


def _lerp(x, axis: int, p: AxisPlan, tmp, name):
    """x[low] + (x[high] - x[low]) * weight along ``axis``."""
    low = mb.gather(x=x, indices=p.low, axis=axis, name=tmp(f"axis{axis}_low"))
    high = mb.gather(x=x, indices=p.high, axis=axis, name=tmp(f"axis{axis}_high"))
    weight = p.weight.reshape([-1] + [1] * (x.rank - axis - 1))
    if x.dtype.__name__ == "fp16":
        weight = weight.astype(np.float16)
    delta = mb.sub(x=high, y=low, name=tmp(f"axis{axis}_delta"))
    return mb.add(x=low, y=mb.mul(x=delta, y=weight, name=tmp(f"axis{axis}_step")), name=name)


def _check(node, ctx):
    dtype = ctx.dtype(node.inputs[0])
    if dtype is not None and not np.issubdtype(dtype, np.floating):
        return f"data dtype {dtype}: MIL resizing takes fp16/fp32 only"
    result = plan(node, ctx)
    return result if isinstance(result, str) else None


@op_builder("Resize", min_opset=10)
def resize(node, ctx):
    _emit(node, ctx)


@op_builder("Upsample", min_opset=7, max_opset=9)
def upsample(node, ctx):
    _emit(node, ctx)


resize.check(_check)
upsample.check(_check)
