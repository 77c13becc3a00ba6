"""Kernel registry of the MIL interpreter: ``@kernel("conv")`` registers a numpy implementation.

A kernel is called as ``fn(op, **inputs)``: ``op`` is the pymil Operation (for its name, output
vars and, for control flow, its blocks) and each MIL input of the op arrives by its MIL name as a
numpy array, a Python scalar/str/bool for scalars, or a list of those for tuple inputs; optional
inputs the op does not set arrive as their MIL default or are absent. It returns one array or a
tuple of arrays, one per output var. The executor casts each result to its var's dtype (an fp16
tensor var holds a float32 array of fp16 values: a float32 result is rounded as ``astype(np.float16)``
would round it, see ``interpreter/fp16.py``), so kernels compute in float32 (fp16 tensors arrive as
float32 arrays, except fp16 constants of more than kernels/conv.py's MAX_CONVERTED_WEIGHT elements,
which stay float16 and which kernels widen), and checks its shape against the var's static dims.
Specializations see an fp16 tensor's spec as a float32 one. Ops with nested blocks (cond,
while_loop) run them with
``onnx2mil.backend.interpreter.core.run_block``; const and constexpr_* kernels run once, when the
program is planned.

A kernel may also have a **specialization** (``@specialize("conv")``): a factory the planner calls
once per op as ``factory(op, static, dynamic)`` — ``static`` the arguments known at plan time (as
the kernel would receive them), ``dynamic`` a list of ``(argument name, spec)`` for the others, in
order, where ``spec`` says the var's ``np_dtype``, ``rank``, ``shape`` (None unless fully static)
and whether it is a ``scalar`` — that returns ``run(*dynamic values)`` doing what the kernel would
do with everything that depends on the op alone precomputed, or None to leave the op to the
kernel; it applies only while that kernel is the registered one (a test that replaces a kernel runs
the replacement). A specialization must give bit-identical results to its kernel (the same numpy operations
on the same operands); it only removes per-call work.
"""
from __future__ import annotations

from typing import Callable

KERNELS: dict[str, Callable] = {}
SPECIALIZERS: dict[str, tuple] = {}  # op type -> (the kernel it specializes, factory)


def kernel(*op_types: str):
    def register(fn: Callable) -> Callable:
        for op_type in op_types:
            if op_type in KERNELS:
                raise ValueError(f"MIL op '{op_type}' already has a kernel ({KERNELS[op_type].__module__})")
            KERNELS[op_type] = fn
        return fn

    return register


def specialize(*op_types: str):
    """Register a specialization of the kernels already registered for ``op_types``; it applies
    only while that kernel is the registered one (a replaced kernel runs as itself)."""
    def register(factory: Callable) -> Callable:
        for op_type in op_types:
            if op_type in SPECIALIZERS:
                raise ValueError(f"MIL op '{op_type}' already has a specialization ({SPECIALIZERS[op_type][1].__module__})")
            if op_type not in KERNELS:
                raise ValueError(f"MIL op '{op_type}': register its kernel before its specialization")
            SPECIALIZERS[op_type] = (KERNELS[op_type], factory)
        return factory

    return register
