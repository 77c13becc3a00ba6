"""What op builders share, in one place: the support checks' requirements (each returns what it
checked or raises ``Refuse`` with the reason the user reads), constants in a var's dtype, and the
spatial attributes of convolution-like ops. Not an op module: it registers nothing.
"""
from __future__ import annotations

from typing import Optional, Sequence

import coremltools as ct
import numpy as np
from coremltools.converters.mil import Builder as mb
from coremltools.converters.mil.mil import Var, types

from ..backend.convert.fp16_weights import conv_sum_groups, round_keeping_sums
from ..backend.convert.registry import Refuse

__all__ = [
    "Refuse", "reason", "np_dtype", "const_like", "is_static", "kind", "widen",
    "require_const", "require_shape", "require_rank", "require_axis", "require_static",
    "require_kinds", "require_float_or_int", "require_layout_dtype", "require_float_input",
    "input_refusal", "spatial_attrs", "depthwise_weight",
]

_FLOAT = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))
_INT = (np.dtype(np.int32), np.dtype(np.int64))
_SMALL_INT = (np.dtype(np.int8), np.dtype(np.uint8), np.dtype(np.int16), np.dtype(np.uint16))
MAX_RANK = 5  # Core ML tensors have rank <= 5


def reason(requirement, *args, **kwargs) -> Optional[str]:
    """The reason ``requirement(*args, **kwargs)`` refuses with, or None if it is met."""
    try:
        requirement(*args, **kwargs)
    except Refuse as refusal:
        return refusal.reason
    return None


# ---- constants ------------------------------------------------------------------------------
def np_dtype(var) -> type:
    """The numpy dtype of a MIL var (fp16 -> np.float16 ...)."""
    return types.nptype_from_builtin(var.dtype)


def const_like(value, var) -> np.ndarray:
    """A numpy constant in the dtype of ``var`` (MIL ops need both operands in one dtype)."""
    return np.asarray(value).astype(np_dtype(var))


def is_static(shape) -> bool:
    """A known shape whose every dim is an int."""
    return shape is not None and all(isinstance(d, (int, np.integer)) for d in shape)


# ---- requirements: each returns what it checked, or raises Refuse --------------------------------
def require_const(ctx, name: str, what: str, why: str = "") -> np.ndarray:
    """The build-time value of ONNX tensor ``name``; refuses saying ``what`` must be a constant
    (``why``), and where a chain from a symbolic shape starts, if it is one."""
    refusal = ctx.const_refusal(name, what, why)
    if refusal:
        raise Refuse(refusal)
    return ctx.const(name)


def require_shape(ctx, name: str, what: str = "input") -> tuple:
    """The ONNX shape of ``name`` (dims are ints or symbols); refuses if even its rank is unknown."""
    shape = ctx.shape(name)
    if shape is None:
        raise Refuse(f"{what} rank is unknown")
    return shape


def require_rank(ctx, name: str, what: str = "input", min_rank: int = 0) -> int:
    """The rank of ``name``; refuses if it is unknown or below ``min_rank``."""
    rank = len(require_shape(ctx, name, what))
    if rank < min_rank:
        raise Refuse(f"{what} rank {rank} is below {min_rank}")
    return rank


def require_axis(axis: int, rank: int, what: str = "axis") -> int:
    """``axis`` made non-negative; refuses if it is outside [-rank, rank)."""
    if not -rank <= axis < rank:
        raise Refuse(f"{what} {axis} is out of range for rank {rank}")
    return axis % rank


def require_static(shape, what: str) -> tuple:
    """``shape`` if every dim is known; refuses with ``what`` (e.g. "the channel dim must be static")."""
    if not is_static(shape):
        raise Refuse(what)
    return tuple(shape)


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


def require_kinds(ctx, names: Sequence[str], kinds: tuple[str, ...], widens_small_ints: bool = False) -> None:
    """Refuses an input whose ONNX dtype is not of ``kinds`` (unknown dtypes pass).
    ``widens_small_ints``: the builder computes small ints in int32 (see ``widen``)."""
    for name in names:
        dt = ctx.dtype(name) if name else None
        k = kind(dt) if dt is not None else None
        if k == "small_int" and widens_small_ints and "int" in kinds:
            if ctx.target < ct.target.iOS17:
                raise Refuse(f"input '{name}' is {np.dtype(dt).name}: computed in int32 between casts, which "
                             "need minimum_deployment_target >= iOS17")
        elif dt is not None and k not in kinds:
            raise Refuse(f"input '{name}' is {np.dtype(dt).name}; this lowering takes {'/'.join(kinds)} tensors")


def require_float_or_int(ctx, name: str, takes: str, what: str = "data") -> None:
    """Refuses a dtype other than float or int32/int64 (unknown dtypes pass); ``takes`` says what
    the MIL op takes, e.g. "MIL cumsum takes fp16, fp32, int32"."""
    dtype = ctx.dtype(name)
    if dtype is not None and kind(dtype) not in ("float", "int"):
        raise Refuse(f"{what} dtype {dtype}: {takes}")


def require_layout_dtype(ctx, name: str) -> None:
    """MIL's tensor-layout ops (reshape, transpose, concat, slice, split, squeeze, tile) take fp16,
    fp32, int32 (ONNX int64) and bool."""
    dtype = ctx.dtype(name)
    if dtype is not None and kind(dtype) not in ("float", "int", "bool"):
        raise Refuse(f"dtype {dtype}: MIL takes fp16, fp32, int32 (int64) and bool here")


def require_float_input(ctx, name: str, min_rank: int = 0, what: str = "normalizes") -> tuple:
    """The shape of a float input of known rank ``min_rank``..5 (Core ML's tensor rank limit);
    refuses otherwise. ``what``: what the MIL op does, for the dtype reason."""
    shape = require_shape(ctx, name)
    if len(shape) < min_rank:
        raise Refuse(f"input rank {len(shape)} is below {min_rank} (N, C, ...)")
    if len(shape) > MAX_RANK:
        raise Refuse(f"input rank {len(shape)} (Core ML tensors have rank <= {MAX_RANK})")
    if kind(ctx.dtype(name) or np.int32) != "float":
        raise Refuse(f"input dtype {ctx.dtype(name)} (MIL {what} fp16/fp32 only)")
    return shape


def input_refusal(ctx, name: str, min_rank: int = 0, what: str = "normalizes") -> Optional[str]:
    """``require_float_input`` as a reason string (for checks that return their reasons)."""
    return reason(require_float_input, ctx, name, min_rank, what)


# ---- emission ---------------------------------------------------------------------------------
def widen(vars_, tmp):
    """int8/uint8/int16/uint16 vars cast to int32, and the MIL dtype to cast a result back to: the
    first var's when it is a small int, else None. ``tmp(what)`` names the casts."""
    small = [isinstance(v, Var) and types.builtin_to_string(v.dtype) in ("int8", "uint8", "int16", "uint16")
             for v in vars_]
    back = types.builtin_to_string(vars_[0].dtype) if small[0] else None
    out = [mb.cast(x=v, dtype="int32", name=tmp(f"int32_{i}")) if s else v
           for i, (v, s) in enumerate(zip(vars_, small))]
    return out, back


def spatial_attrs(node, kernel_rank: int):
    """ONNX strides, dilations (defaults 1) and pads as MIL's [b1, e1, b2, e2, ...]."""
    strides = list(node.attr("strides") or [1] * kernel_rank)
    dilations = list(node.attr("dilations") or [1] * kernel_rank)
    onnx_pads = list(node.attr("pads") or [0] * (2 * kernel_rank))
    # ONNX: [b1, b2, ..., e1, e2, ...]; MIL: [b1, e1, b2, e2, ...]
    pads = [p for i in range(kernel_rank) for p in (onnx_pads[i], onnx_pads[i + kernel_rank])]
    return strides, dilations, pads


def depthwise_weight(ctx, node, weight: np.ndarray, *, transposed: bool, strides, dilations) -> np.ndarray:
    """A constant Conv/ConvTranspose weight as the build stores it. In an fp16 build, a depthwise
    filter (one input channel per group) is rounded keeping each output's tap sum (config
    ``precision.fp16_depthwise_weights``): nearest rounding of BigVGAN's anti-aliasing low-pass
    scales every activation by 1 - 4.6e-4, an error that adds up over its depth."""
    groups = node.attr("group", 1)
    inputs_per_group = weight.shape[0] // groups if transposed else weight.shape[1]
    if (ctx.precision != "fp16" or groups == 1 or inputs_per_group != 1 or weight.dtype != np.float32
            or ctx.config.data["precision"]["fp16_depthwise_weights"] != "keep_sums"):
        return weight
    sums = conv_sum_groups(weight.shape, transposed=transposed, groups=groups, strides=strides, dilations=dilations)
    return round_keeping_sums(weight, sums)
