"""The ``mil-ane`` runtime: an **emulation** of the Neural Engine on the MIL interpreter, not the
Neural Engine. It shows on any platform which lowering variant a Neural Engine would break; on a
Mac the real ``coreml-CPU_AND_NE`` column stands beside it.

What it reproduces (the hazards of ``hazards.py`` documented precisely enough to emulate):
- the Neural Engine computes in fp16 whatever the declared precision (coremltools#2687, #2690,
  #2728, #2729): every float value of the program — inputs, constants, each op's outputs — is
  rounded to float16 (overflowing to ±inf) as soon as it exists, then kept in the program's dtype;
- ``conv_transpose_1d_bias``: a rank-3 ``conv_transpose`` adds its (nonzero) bias to the first
  ``BIAS_REACH`` elements of each channel only. The report says "the first elements", size-
  dependent, without a count: ``BIAS_REACH`` is this emulation's choice, not a measured value.

Only the vars of the main function's top-level block are emulated (ops inside control-flow
bodies run as on the plain interpreter).
"""
from __future__ import annotations

from typing import Callable, Mapping, Optional

import numpy as np
from coremltools.converters.mil.mil import types

from . import hazards

LABEL = "emulation"
BIAS_REACH = 8  # elements per channel a rank-3 conv_transpose's bias reaches (an assumption)
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


def observers(prog, function: str = "main") -> dict[str, Callable]:
    """``{var name: callback}`` for ``interpreter.run_program(observe=...)`` that turn the plain
    interpreter into the emulated Neural Engine."""
    func = prog.functions[function]
    sites = hazards.BY_KEY["conv_transpose_1d_bias"].mil_pattern(prog)
    buggy = {op.outputs[0].name: _bias_on_first_elements(op.bias.val) for op in sites
             if op.bias.val is not None and op.enclosing_block is func}
    callbacks: dict[str, Callable] = {}
    names = [v for v in func.inputs.values()] + [v for op in func.operations for v in op.outputs]
    for var in names:
        if not _is_float(var):
            continue
        effect = buggy.get(var.name)
        callbacks[var.name] = (lambda _n, v, e=effect: to_fp16(e(v))) if effect else (lambda _n, v: to_fp16(v))
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
