"""What onnx2mil changes in how coremltools runs its passes, each exactly equivalent to what it
replaces and measured on the 115M-parameter BigVGAN (``benchmarks/pass_costs.py``):

- ``onnx2mil::add_fp16_cast`` replaces ``common::add_fp16_cast``: the same transform, with the
  overflow check done in two read-only reductions (``max``/``min``) before coremltools' masked
  one. coremltools' check builds ``|w|``, a boolean mask, an int64 index array and a gathered copy
  of every fp32 weight for every op that reads it (5.4 s of that model's fp16 build); a weight
  within ±65504 needs none of them.
- ``onnx2mil::reduce_transposes`` replaces ``common::reduce_transposes``: the same transform, run
  only on a function that holds a ``transpose`` (it cancels transposes and nothing else; on one
  without, coremltools' pass still walks and re-infers every op: 3 s over its three runs on that
  model, which has none).
- ``passes_streamlined``, around the whole pipeline:
  - after every pass coremltools re-derives, for every var of every block, the set of
    ``constexpr_*`` vars upstream of it (``Block._propagate_nonreplaceable_vars``: 648k var
    visits, 12 s of a 54 s profiled build). In a program without ``constexpr_*`` or ``dequantize``
    ops every such set is empty and no pass creates a ``constexpr_*`` op out of nothing
    (``dequantize_to_constexpr`` needs a ``dequantize``), so the walk is skipped for the blocks of
    such a program; a var a pass creates still computes its own (empty) set;
  - coremltools formats the whole program (and ``reduce_transposes`` each block it works on) into
    debug messages, ``logger.debug(f"...{prog}")``, whatever the log level (4.2 s in that profile);
    they render only when the message would be emitted.

Checked by ``tests/test_passes.py``: every reference model and real export builds to the same
program (op types and names) with bit-identical outputs as through coremltools' own passes.
"""
from __future__ import annotations

import contextlib
import logging

import numpy as np
from coremltools.converters.mil.mil import Program
from coremltools.converters.mil.mil.block import Block, Function
from coremltools.converters.mil.mil.passes.defs.optimize_repeat_ops import reduce_transposes as _ct_reduce_transposes
from coremltools.converters.mil.mil.passes.defs.quantization import add_fp16_cast as _ct_add_fp16_cast
from coremltools.converters.mil.mil.passes.pass_registry import register_pass

FP16_CAST = "onnx2mil::add_fp16_cast"
COREMLTOOLS_FP16_CAST = "common::add_fp16_cast"

_FP16_MAX = float(np.finfo(np.float16).max)


def _const_overflows_fp16(value) -> bool:
    """coremltools' rule: a finite fp32 value (|v| < 1e38; larger ones are meant as infinities, e.g.
    attention masks) beyond fp16's ±65504."""
    value = np.asarray(value)
    if value.size == 0:
        return False
    high, low = value.max(), value.min()
    if -_FP16_MAX <= low and high <= _FP16_MAX:  # NaN compares False: falls through to the full check
        return False
    magnitude = np.abs(value)
    return bool(np.max(magnitude[magnitude < 1e38], initial=0.0) > _FP16_MAX)


@register_pass(namespace="onnx2mil")
class add_fp16_cast(_ct_add_fp16_cast):
    """coremltools' ``common::add_fp16_cast`` with a fast overflow check (same verdicts)."""

    @staticmethod
    def fp16_overflow(op) -> bool:
        for inputs in op.inputs.values():
            for var in inputs if isinstance(inputs, (list, tuple)) else (inputs,):
                if (var.op is not None and var.op.op_type == "const"
                        and var.is_tensor_or_scalar_of(dtype="fp32")
                        and _const_overflows_fp16(var.op.val.val)):
                    return True
        return False


REPLACED = {COREMLTOOLS_FP16_CAST: FP16_CAST, "common::reduce_transposes": "onnx2mil::reduce_transposes"}


def with_own_passes(passes: list[str]) -> list[str]:
    """``passes`` with coremltools' passes that onnx2mil replaces by its own (same transforms)."""
    return [REPLACED.get(p, p) for p in passes]


def _blocks(block):
    yield block
    for op in block.operations:
        for b in op.blocks:
            yield from _blocks(b)


def _tracks_nonreplaceable(prog: Program) -> bool:
    return any(op.op_type.startswith("constexpr_") or op.op_type == "dequantize"
               for f in prog.functions.values() for b in _blocks(f) for op in b.operations)


def _render_now() -> bool:
    return logging.getLogger("coremltools").isEnabledFor(logging.DEBUG)


_DEFERRED = "<MIL {kind}: rendered at coremltools' DEBUG log level only>"


class _QuietBlock(Block):
    __slots__ = ()

    def __str__(self):
        return super().__str__() if _render_now() else _DEFERRED.format(kind="block")


class _QuietUntrackedBlock(_QuietBlock):
    __slots__ = ()

    def _propagate_nonreplaceable_vars(self):
        return None


class _QuietFunction(Function):
    def __str__(self):
        return super().__str__() if _render_now() else _DEFERRED.format(kind="function")


class _QuietUntrackedFunction(_QuietFunction):
    def _propagate_nonreplaceable_vars(self):
        return None


class _QuietProgram(Program):
    def __str__(self):
        return super().__str__() if _render_now() else _DEFERRED.format(kind="program")


@contextlib.contextmanager
def passes_streamlined(prog: Program):
    """For the duration: ``prog``, its functions and blocks render as text only when coremltools'
    debug log would print them, and skip the per-pass re-derivation of nonreplaceable vars when the
    program holds no op that makes one (see the module docstring). Done by swapping the objects'
    classes for subclasses (``Block`` has slots, no instance attributes): other programs, blocks a
    pass creates meanwhile (they keep coremltools' behaviour) and the classes themselves are
    untouched."""
    untracked = not _tracks_nonreplaceable(prog)
    subclass = {Block: _QuietUntrackedBlock if untracked else _QuietBlock,
                Function: _QuietUntrackedFunction if untracked else _QuietFunction,
                Program: _QuietProgram}
    swapped = [(obj, type(obj)) for obj in (prog, *(b for f in prog.functions.values() for b in _blocks(f)))
               if type(obj) in subclass]
    for obj, cls in swapped:
        obj.__class__ = subclass[cls]
    try:
        yield
    finally:
        for obj, cls in swapped:
            obj.__class__ = cls


@register_pass(namespace="onnx2mil")
class reduce_transposes(_ct_reduce_transposes):
    """coremltools' ``common::reduce_transposes`` on the functions that hold a ``transpose`` (it
    cancels transposes and nothing else; on a function without one it walks and re-infers every op
    to change nothing: 3 s of the 115M BigVGAN's build, three runs)."""

    def apply(self, prog):
        for f in prog.functions.values():
            if any(op.op_type == "transpose" for op in f.operations):
                self._reduce_transposes_block(f)
