"""The ``mil-ane`` runtime: an **emulation** of the Neural Engine on the MIL interpreter, not the
Neural Engine. It shows on any platform which lowering variant a Neural Engine would break; on a
Mac the real ``coreml-CPU_AND_NE`` column stands beside it.

What it reproduces (the hazards of ``hazards.py`` documented precisely enough to emulate):
- the Neural Engine computes in fp16 whatever the declared precision (coremltools#2687, #2690,
  #2728, #2729): every float value of the program — inputs, constants, each op's outputs — is
  rounded to float16 (overflowing to ±inf) as soon as it exists, then kept in the program's dtype;
- ``conv_transpose_1d_bias``: a rank-3 ``conv_transpose`` adds its (nonzero) bias to the first
  ``BIAS_REACH`` elements of each channel only. The report says "the first elements", size-
  dependent, without a count: ``BIAS_REACH`` is this emulation's choice, not a measured value;
- ``softplus_fp16``: ``softplus`` is 0 where x > ``SOFTPLUS_CLIFF`` (coremltools#2687's observed
  cliff, ~10.4);
- ``logsumexp_fp16``: ``reduce_log_sum_exp`` is 0 where sum(exp(x)) over its axes exceeds fp16's
  max (no max shift: coremltools#2690).
- ``norm_fp16_overflow``: a fused ``layer_norm`` / ``instance_norm`` takes its statistics in fp16:
  in a group where (x - mean)^2 exceeds fp16's max the variance is inf and the normalized value 0,
  so the output is beta (0 without one) — the collapse reported for fp16 statistics by
  ml-explore/mlx#4228 and onnxruntime#17692; that the NE's fused kernel does the same is this
  emulation's assumption (coremltools#2110 / #1671 report fp16 intermediate overflow, not the values).

Only the vars of the main function's top-level block are emulated (ops inside control-flow
bodies run as on the plain interpreter).
"""
from __future__ import annotations

from typing import Callable, Mapping, Optional

import numpy as np
from coremltools.converters.mil.mil import types

from ..convert import hazards

LABEL = "emulation"
BIAS_REACH = 8  # elements per channel a rank-3 conv_transpose's bias reaches (an assumption)
SOFTPLUS_CLIFF = 10.4  # coremltools#2687: softplus drops to 0 above this input on the NE
FP16_MAX = float(np.finfo(np.float16).max)


def to_fp16(value: np.ndarray) -> np.ndarray:
    """``value`` rounded to float16 (±inf beyond its range), in its own dtype."""
    value = np.asarray(value)
    if value.dtype.kind != "f" or value.dtype == np.float16:
        return value
    with np.errstate(over="ignore"):
        return value.astype(np.float16).astype(value.dtype)


def _is_float(var) -> bool:
    sym = var.sym_type
    dtype = sym.get_primitive() if types.is_tensor(sym) else sym
    return types.is_float(dtype)


def _bias_on_first_elements(bias: np.ndarray) -> Callable:
    per_channel = np.asarray(bias, np.float64).reshape(-1, 1)

    def apply(value: np.ndarray) -> np.ndarray:
        out = np.array(value, dtype=np.float64)
        out[..., BIAS_REACH:] -= per_channel  # the bias stays on the first BIAS_REACH elements only
        return out.astype(value.dtype)

    return apply


def _softplus_cliff(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.where(np.asarray(x) > SOFTPLUS_CLIFF, 0, y).astype(y.dtype)


def _log_sum_exp_overflow(op) -> Callable:
    axes = None if op.axes is None else tuple(int(a) for a in op.axes.val)
    keep = bool(op.keep_dims.val) if op.keep_dims is not None else False

    def apply(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        x = np.asarray(x, np.float64)
        with np.errstate(over="ignore"):
            total = np.exp(x).sum(axis=None if axes is None else tuple(a % x.ndim for a in axes), keepdims=keep)
        return np.where(total.reshape(y.shape) > FP16_MAX, 0, y).astype(y.dtype)

    return apply


def _norm_variance_overflow(op) -> Callable:
    def apply(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        x = np.asarray(x, np.float64)
        if op.op_type == "layer_norm":
            axes = tuple(range(x.ndim)) if op.axes is None else tuple(int(a) % x.ndim for a in op.axes.val)
            shape = [x.shape[i] if i in axes else 1 for i in range(x.ndim)]
        else:  # instance_norm: per (n, c) over the spatial dims; beta per channel
            axes = tuple(range(2, x.ndim))
            shape = [1, x.shape[1]] + [1] * (x.ndim - 2)
        deviation = x - x.mean(axis=axes, keepdims=True)
        overflow = np.max(deviation * deviation, axis=axes, keepdims=True) > FP16_MAX
        if not overflow.any():
            return y
        beta = 0.0 if op.beta is None or op.beta.val is None else np.asarray(op.beta.val, np.float64).reshape(shape)
        return np.where(overflow, np.broadcast_to(beta, y.shape), y).astype(y.dtype)

    return apply


def observers(prog, function: str = "main") -> dict[str, Callable]:
    """``{var name: callback}`` for ``interpreter.run_program(observe=...)`` that turn the plain
    interpreter into the emulated Neural Engine."""
    func = prog.functions[function]
    sites = hazards.BY_KEY["conv_transpose_1d_bias"].mil_pattern(prog)
    # output var -> (input var or None, effect(value) or effect(input, value))
    effects: dict[str, tuple] = {op.outputs[0].name: (None, _bias_on_first_elements(op.bias.val)) for op in sites
                                 if op.bias.val is not None and op.enclosing_block is func}
    for op in func.operations:
        if op.op_type == "softplus":
            effects[op.outputs[0].name] = (op.x.name, _softplus_cliff)
        elif op.op_type == "reduce_log_sum_exp":
            effects[op.outputs[0].name] = (op.x.name, _log_sum_exp_overflow(op))
        elif op.op_type in ("layer_norm", "instance_norm"):
            effects[op.outputs[0].name] = (op.x.name, _norm_variance_overflow(op))
    wanted = {source for source, _ in effects.values() if source is not None}
    seen: dict[str, np.ndarray] = {}  # the emulated values of the inputs the effects read

    def callback(name: str, effect):
        source, apply = effect if effect else (None, None)

        def run(_n, v):
            if apply is not None:
                v = apply(v) if source is None else apply(seen[source], v)
            v = to_fp16(v)
            if name in wanted:
                seen[name] = v
            return v

        return run

    callbacks: dict[str, Callable] = {}
    names = [v for v in func.inputs.values()] + [v for op in func.operations for v in op.outputs]
    for var in names:
        if _is_float(var):
            callbacks[var.name] = callback(var.name, effects.get(var.name))
    return callbacks


def combine(emulation: Mapping[str, Callable], user: Optional[Mapping[str, Callable]]) -> dict:
    """Emulation first, then the caller's observer on the emulated value."""
    merged = dict(emulation)
    for name, callback in (user or {}).items():
        first = merged.get(name)
        if first is None:
            merged[name] = callback
            continue

        def both(n, v, first=first, then=callback):
            emulated = first(n, v)
            replaced = then(n, emulated)
            return emulated if replaced is None else replaced

        merged[name] = both
    return merged
