"""What onnx2mil changes in how coremltools runs its passes, each equivalent to what it replaces
(same program, bit-identical outputs: ``tests/test_passes.py``) and measured on the 115M-parameter
BigVGAN and the small vocoder export (``benchmarks/pass_costs.py``, ``benchmarks/build_speed.py``):

- ``onnx2mil::add_fp16_cast`` replaces ``common::add_fp16_cast`` (the fp16 program, in place; see
  the class). Its overflow check does two read-only reductions (``max``/``min``) before
  coremltools' masked one, which builds ``|w|``, a boolean mask, an int64 index array and a
  gathered copy of every fp32 weight for every op that reads it (5.4 s of the big model's build).
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
    they render only when the message would be emitted;
  - the curated pipeline: a pass of ``GATES`` is skipped when the program lacks the op types its
    patterns need (51 of the 65 passes a build runs; each entry gives the op types and the reason),
    a pass of ``IDEMPOTENT`` when it ran just before; ``UNGATED`` says why the others always run.
    The model's metadata records the passes run and those skipped with the reason
    (``pipeline.pass_runs``). On both BigVGANs 48 of 105 pass runs are skipped at fp16 (46 by
    gates, 2 DCE repeats), 54 of 102 at fp32 (50 + 4) (``benchmarks/history.md``, "Curated
    pipeline").
- the fp16 pass's fp32->fp16 casts and overflow max/min run over threads for arrays from 1M
  elements (``to_fp16``, ``_extrema``: astype's bits, numpy's max/min).
- ``type_queries_memoized``, around a whole build (emission and conversion): coremltools asks
  ``types.is_tensor``/``is_list``/... of a type class tens of thousands of times per build, each
  building a fresh ``Type`` description of the class (``get_type_info``); a ``const`` op works out
  its type and value from its value twice (``type_inference``, then ``value_inference``). Both are
  pure functions of their argument, computed once here: 11-12% of the small vocoder's build.

"""
from __future__ import annotations

import contextlib
import importlib
import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Optional

import numpy as np
from coremltools.converters.mil.mil import Builder as mb
from coremltools.converters.mil.mil import Program, types
from coremltools.converters.mil.mil.block import Block, Function
from coremltools.converters.mil.mil.ops.defs.iOS15.control_flow import Const
from coremltools.converters.mil.mil.passes.defs.cleanup.noop_elimination import noop_elimination as _ct_noop_elimination
from coremltools.converters.mil.mil.passes.defs.lower_complex_dialect_ops import LowerComplex
from coremltools.converters.mil.mil.passes.defs.optimize_repeat_ops import reduce_transposes as _ct_reduce_transposes
from coremltools.converters.mil.mil.passes.defs.quantization import add_fp16_cast as _ct_add_fp16_cast
from coremltools.converters.mil.mil.passes.defs.quantization import add_int16_cast as _ct_add_int16_cast
from coremltools.converters.mil.mil.passes.pass_pipeline import PassPipelineManager
from coremltools.converters.mil.mil.passes.pass_registry import PASS_REGISTRY, register_pass

from .fp16_weights import FP16_MAX

FP16_CAST = "onnx2mil::add_fp16_cast"
COREMLTOOLS_FP16_CAST = "common::add_fp16_cast"

# coremltools' fp16 pass treats fp32 constants from this magnitude on as infinities and casts them
# (attention masks); an op with a finite constant between FP16_MAX and this stays in fp32.
FP16_PASS_INFINITY = 1e38
_FP16_TINY = np.nextafter(np.float16(0), np.float16(1))


# Arrays from this many elements are cast and reduced in chunks over threads (numpy's casts and
# reductions release the GIL): each element goes through the same numpy loop, so the fp16 bits are
# astype's and max/min are exact (a NaN in any chunk gives NaN, as over the whole array).
_PARALLEL_MIN = 1 << 20
_WORKERS = max(1, min(os.cpu_count() or 1, 4))


_POOL: Optional[tuple[int, ThreadPoolExecutor]] = None  # (the process id that made it, the pool)
_POOL_LOCK = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    """One pool per process (starting threads per array cost 2 ms each on a loaded machine). A
    forked child gets a new one: the parent's pool lists threads the child does not have and would
    never run its work."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None or _POOL[0] != os.getpid():
            _POOL = (os.getpid(), ThreadPoolExecutor(_WORKERS - 1, thread_name_prefix="onnx2mil-fp16"))
        return _POOL[1]


def _chunked(value: np.ndarray, fn, out: Optional[np.ndarray] = None) -> list:
    """``fn(chunk of value, chunk of out or None)`` over ``_WORKERS`` chunks, the first in this
    thread and the others in the pool, each under the caller's numpy error state (thread-local);
    their results in order."""
    src, dst = value.reshape(-1), (out.reshape(-1) if out is not None else None)
    step = -(-src.size // _WORKERS)
    errors = np.geterr()

    def run(start):
        with np.errstate(**errors):
            return fn(src[start:start + step], dst[start:start + step] if dst is not None else None)

    starts = range(0, src.size, step)
    others = [_pool().submit(run, start) for start in starts[1:]]
    first = run(starts[0])
    return [first] + [f.result() for f in others]


def _parallel(value: np.ndarray) -> bool:
    return _WORKERS > 1 and value.size >= _PARALLEL_MIN and value.flags.c_contiguous


def to_fp16(value: np.ndarray) -> np.ndarray:
    """``value.astype(np.float16)``, bit for bit; large C-contiguous arrays over threads."""
    if not _parallel(value):
        return value.astype(np.float16)
    out = np.empty(value.shape, np.float16)
    _chunked(value, lambda s, d: np.copyto(d, s, casting="unsafe"), out)
    return out


def _extrema(value: np.ndarray):
    """``(value.max(), value.min())``; large C-contiguous arrays over threads."""
    if not _parallel(value):
        return value.max(), value.min()
    parts = _chunked(value, lambda s, _: (s.max(), s.min()))
    return np.max([p[0] for p in parts]), np.min([p[1] for p in parts])


def _const_overflows_fp16(value) -> bool:
    """coremltools' rule: a finite fp32 value (|v| < 1e38; larger ones are meant as infinities, e.g.
    attention masks) beyond fp16's ±65504."""
    value = np.asarray(value)
    if value.size == 0:
        return False
    high, low = _extrema(value)
    if -FP16_MAX <= low and high <= FP16_MAX:  # NaN compares False: falls through to the full check
        return False
    magnitude = np.abs(value)
    return bool(np.max(magnitude[magnitude < FP16_PASS_INFINITY], initial=0.0) > FP16_MAX)


class _Held:
    """A value where ``FP16ComputePrecision._check_underflow_to_zero`` reads and rewrites it."""

    def __init__(self, value):
        self._sym_val = _Box(value)

    @property
    def val(self):
        return self._sym_val.val


class _Box:
    def __init__(self, val):
        self.val = val


@register_pass(namespace="onnx2mil")
class add_fp16_cast(_ct_add_fp16_cast):
    """coremltools' ``common::add_fp16_cast``, done in place.

    coremltools re-creates every op it makes fp16 through the MIL builder (``mb.<op>`` with a cast
    on each fp32 input), casts each new output back to fp32, re-points every use, and leaves the
    cast pairs and cast constants for ``cast_optimization`` and ``const_elimination`` to undo:
    half of a small vocoder's fp16 build. Here the op keeps its identity: its fp32 constants are
    replaced by fp16 constants, other fp32 inputs by one cast each, and its outputs are re-typed in
    place; a cast back to fp32 is made only where a reader needs fp32 (an op left in fp32, a
    parameter that stays fp32, a block output). Which ops and parameters become fp16, the
    underflow nudge of small constants, and the names (``x_cast_fp16``, ``w_to_fp16``) are
    coremltools' own (``is_valid_op``, ``should_cast_parameter``, ``_check_underflow_to_zero``);
    an op with a ``dtype``-string parameter goes through coremltools' ``transform_op`` unchanged.
    ``tests/test_passes.py`` checks the programs against coremltools' pass after the cleanup passes.
    """

    @staticmethod
    def fp16_overflow(op) -> bool:
        for inputs in op.inputs.values():
            for var in inputs if isinstance(inputs, (list, tuple)) else (inputs,):
                if (var.op is not None and var.op.op_type == "const"
                        and var.is_tensor_or_scalar_of(dtype="fp32")
                        and _const_overflows_fp16(var.op.val.val)):
                    return True
        return False

    def apply(self, prog):
        if getattr(self, "skip_ops_by_type", set()) and self.op_selector is not None:
            raise ValueError("The graph pass option `skip_ops_by_type` cannot be set along with the `op_selector` "
                             "in FP16ComputePrecision. Please only use one method to control which ops to operate on.")
        self._retyped: dict = {}  # var now fp16 that was fp32 -> its fp32 name
        self._to_fp32: dict = {}  # such a var -> its cast back to fp32
        self._stack: list = []  # per block: {fp32 var: its fp16 const or cast}
        for f in prog.functions.values():
            self._retype_block(f)
        del self._retyped, self._to_fp32, self._stack

    def _selected(self, op) -> bool:
        if not self.is_valid_op(op):
            return False
        if self.op_selector is not None:
            return self.op_selector(op)
        return op.op_type not in getattr(self, "skip_ops_by_type", set())

    def _retype_block(self, block):
        self._stack.append({})
        with block:
            for op in list(block.operations):
                for b in op.blocks:
                    self._retype_block(b)
                self._retype_op(op)
            outputs = list(block.outputs)
            if any(v in self._retyped for v in outputs):
                block.set_outputs([self._fp32(v) if v in self._retyped else v for v in outputs])
                if isinstance(block, Function):  # function outputs keep their names (as coremltools')
                    for old, new in zip(outputs, block.outputs):
                        if new is not old:
                            new.name = self._retyped[old]
        self._stack.pop()

    def _retype_op(self, op) -> None:
        selected = self._selected(op)
        changed, new_inputs = False, {}
        for param, inputs in op.inputs.items():
            as_list = isinstance(inputs, (list, tuple))
            old = list(inputs) if as_list else [inputs]
            cast = selected and self.should_cast_parameter(op, param)
            new = []
            for var in old:
                if cast and var.dtype == types.str and var.val == "int32":
                    super().transform_op(op)  # coremltools' dtype-string rewrite, as it does it
                    return
                if cast and var in self._retyped:
                    changed = True  # already fp16: read as it is
                    new.append(var)
                elif cast and var.is_tensor_or_scalar_of(dtype="fp32"):
                    changed = True
                    new.append(self._fp16(var, op))
                elif var in self._retyped:  # stays fp32 here
                    new.append(self._fp32(var))
                else:
                    new.append(var)
            if any(n is not o for n, o in zip(new, old)):
                new_inputs[param] = type(inputs)(new) if as_list else new[0]
        if new_inputs:
            op.set_inputs(no_check_var_types=True, **new_inputs)
        if not (selected and changed):  # fp32 as before: re-typed inputs now read through casts back
            return
        was_fp32 = [v.is_tensor_or_scalar_of(dtype="fp32") for v in op.outputs]
        names = [v.name for v in op.outputs]
        op.type_value_inference(overwrite_output=True)
        renamed = f"{op.name}_cast_{self.target_dtype}"
        for var, name, fp32 in zip(op.outputs, names, was_fp32):
            if name == op.name or name.startswith(op.name + "_"):
                var.name = renamed + name[len(op.name):]
            if fp32 and not var.is_tensor_or_scalar_of(dtype="fp32"):
                self._retyped[var] = name
        op.name = renamed

    def _fp16(self, var, before_op):
        """The fp16 form of fp32 ``var`` for ``before_op``: a constant when ``var`` is one."""
        cache = self._stack[-1]
        if var in cache:
            return cache[var]
        name = f"{var.name}_to_{self.target_dtype}"
        if var.op is not None and var.op.op_type == "const":
            value = _Held(np.float16(var.val) if np.isscalar(var.val) else to_fp16(np.asarray(var.val)))
            # coremltools' nudge of values fp16 would zero; its first test, np.isclose(v, 0, atol=the
            # smallest fp16 subnormal, rtol=eps), is |v| <= that subnormal, done here without np.isclose
            if np.size(value.val) < 400 and np.any(np.abs(value.val) <= _FP16_TINY):
                self._check_underflow_to_zero(value, var)
            new = mb.const(val=value.val, name=name, before_op=before_op)
        else:
            new = mb.cast(x=var, dtype=self.target_dtype, name=name, before_op=before_op)
        Block._copy_metadata(var, new)
        cache[var] = new
        return new

    def _fp32(self, var):
        """A cast back to fp32 of re-typed ``var``, right after its producer (where coremltools puts it)."""
        if var not in self._to_fp32:
            producer = var.op
            block = producer.enclosing_block
            following = block.operations._get_node_from_op(producer).next
            after = following.op if following is not None else None
            with block:
                self._to_fp32[var] = mb.cast(x=var, dtype=self.origin_dtype, name=f"{var.name}_to_{self.origin_dtype}",
                                             before_op=after)
            Block._copy_metadata(var, self._to_fp32[var])
        return self._to_fp32[var]


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


# ---- gates: passes skipped where they cannot match ------------------------------------------------
# Each pass below rewrites only a pattern that contains certain op types (its anchors, read from its
# source in coremltools 9.0, ``coremltools/converters/mil/mil/passes/defs``). A gate is a tuple of
# groups of op types: the pass can change the program only if every group has an op type present
# somewhere in the program (every function, nested blocks included), so it is skipped, as a no-op,
# when one group has none. The op types are read from the program before each run (one walk, cached
# while the passes skipped in a row leave the program untouched). Passes with no anchor (cleanups,
# renaming, I/O types) always run: see UNGATED. ``tests/test_passes.py`` checks on every reference
# model and real exports that the gated pipeline gives the same program as the ungated one, and on
# the op-builder cases that no gated pass changes a program whose anchors are absent.

def _gate(*groups, reason: str):
    return tuple(frozenset(g) for g in groups), reason


_CONV = ("conv", "conv_transpose")
GATES: dict[str, tuple[tuple[frozenset, ...], str]] = {
    "common::lower_complex_dialect_ops": _gate(
        LowerComplex._lower_map, reason="lowers complex-dialect ops (complex, complex_fft, ...) only; its "
        "complex-output check can fail only on a var such an op makes (onnx2mil's inputs are real)"),
    "common::int_op_canonicalization": _gate(
        {"dequantize"}, {"quantize"}, reason="rewrites dequantize -> reshape -> quantize"),
    "common::nullify_redundant_quantization_zero_point": _gate(
        {"quantize", "dequantize"}, reason="edits the zero point of quantize/dequantize ops"),
    "common::dequantize_quantize_pair_elimination": _gate(
        {"dequantize"}, {"quantize"}, reason="removes a dequantize -> quantize pair"),
    "common::distributive_quantized_binary_op_scale_normalization": _gate(
        {"dequantize"}, {"quantize"}, reason="dequantize x, y -> add/sub (-> relu) -> quantize"),
    "common::dequantize_to_constexpr": _gate({"dequantize"}, reason="turns a const dequantize into a constexpr"),
    "common::canonicalize_quantized_lut_pattern": _gate(
        {"constexpr_lut_to_dense"}, {"constexpr_blockwise_shift_scale"},
        reason="reorders a constexpr_lut_to_dense / constexpr_blockwise_shift_scale pair"),
    "common::merge_affine_dequantize_with_consecutive_ops": _gate(
        {"constexpr_affine_dequantize"}, reason="folds ops after a constexpr_affine_dequantize into it"),
    "common::cast_optimization": _gate({"cast"}, reason="removes or fuses cast ops; starts from a cast"),
    "common::noop_elimination": _gate(
        _ct_noop_elimination._SUPPORTED_OPS, reason="removes no-op instances of its _SUPPORTED_OPS only"),
    "common::divide_to_multiply": _gate({"real_div"}, reason="real_div by a constant -> mul"),
    "common::select_optimization": _gate({"select"}, reason="simplifies select ops"),
    "common::loop_invariant_elimination": _gate({"while_loop"}, reason="hoists while_loop invariants"),
    "common::remove_symbolic_reshape": _gate({"reshape"}, reason="makes a reshape's symbolic shape static"),
    "common::fuse_matmul_weight_bias": _gate({"matmul"}, {"add", "sub"}, reason="matmul + add/sub -> linear"),
    "common::fuse_linear_bias": _gate({"linear"}, {"add", "sub"}, reason="linear + add/sub -> linear"),
    "common::fuse_gelu_tanh_approximation": _gate(
        {"pow"}, {"mul"}, {"add"}, {"tanh"}, reason="both patterns: pow, mul, add, tanh -> gelu"),
    "common::fuse_gelu_exact": _gate(
        {"erf"}, {"add"}, {"mul"}, reason="mul/real_div -> erf -> add -> mul (-> mul) -> gelu"),
    "common::fuse_leaky_relu": _gate({"mul"}, {"maximum"}, reason="maximum(x, alpha * x) -> leaky_relu"),
    "common::rank0_expand_dims_swap": _gate(
        {"add", "sub", "mul", "real_div", "floor_div"}, {"expand_dims"},
        reason="a rank-0 elementwise binary op followed by expand_dims"),
    "common::fuse_squeeze_expand_dims": _gate({"squeeze"}, {"expand_dims"}, reason="squeeze -> expand_dims"),
    "common::use_reflection_padding": _gate(
        {"concat"}, {"slice_by_index"}, reason="concat of slices -> reflect pad"),
    "common::merge_consecutive_paddings": _gate({"pad"}, reason="pad -> pad"),
    "common::fuse_pad_conv": _gate({"pad"}, {"transpose"}, reason="pad -> transpose -> conv"),
    "common::replace_stack_reshape": _gate({"stack"}, {"reshape"}, reason="stack -> reshape -> concat"),
    "common::reduce_transposes": _gate({"transpose"}, reason="cancels transposes"),
    "onnx2mil::reduce_transposes": _gate({"transpose"}, reason="cancels transposes"),
    "common::fuse_dilated_conv": _gate(
        {"space_to_batch"}, {"conv"}, {"batch_to_space"}, reason="space_to_batch -> conv -> batch_to_space"),
    "common::fuse_conv_scale": _gate(_CONV, {"mul", "real_div"}, reason="conv(_transpose) -> mul/real_div"),
    "common::fuse_conv_bias": _gate(_CONV, {"add", "sub"}, reason="conv(_transpose) (-> transpose) -> add/sub"),
    "common::fuse_onehot_matmul_to_gather": _gate({"one_hot"}, {"matmul"}, reason="one_hot -> matmul"),
    "common::fuse_layernorm_or_instancenorm": _gate(
        {"reduce_mean", "reduce_sum"}, reason="all five patterns start at a reduce_mean or reduce_sum"),
    "common::fuse_elementwise_to_batchnorm": _gate({"mul"}, {"add"}, reason="mul -> add -> batch_norm"),
    "common::fuse_reduce_mean": _gate({"reduce_sum"}, {"mul", "real_div"}, reason="reduce_sum -> mul/real_div"),
    "common::fuse_conv_batchnorm": _gate(_CONV, {"batch_norm"}, reason="conv(_transpose) -> batch_norm"),
    "common::detect_concat_interleave": _gate(
        {"concat"}, {"reshape"}, {"transpose"}, reason="concat -> reshape -> transpose -> reshape"),
    "common::concat_to_pixel_shuffle": _gate({"concat"}, reason="concats of concats -> pixel_shuffle"),
    "common::fuse_prelu": _gate({"relu"}, {"mul"}, {"add"}, reason="both patterns: relu, mul, add -> prelu"),
    "common::prelu_to_lrelu": _gate({"prelu"}, reason="prelu with one alpha -> leaky_relu"),
    "common::merge_consecutive_relus": _gate({"relu"}, reason="relu -> relu"),
    "common::merge_consecutive_reshapes": _gate({"reshape"}, reason="reshape -> reshape"),
    "common::merge_consecutive_transposes": _gate({"transpose"}, reason="transpose -> transpose"),
    "common::fuse_transpose_matmul": _gate({"transpose"}, {"matmul"}, reason="transpose -> matmul"),
    "common::expand_high_rank_reshape_and_transpose": _gate(
        {"reshape"}, {"transpose"}, reason="reshape -> transpose -> reshape of rank > 6"),
    "common::fuse_stack_split": _gate(
        {"stack"}, reason="stack -> split -> squeeze; also removes a stack nothing reads (found by the soundness "
        "test: a gate on split too was wrong)"),
    "common::add_int16_cast": _gate(
        _ct_add_int16_cast._PREFER_INT16_OPS, reason="casts int32 parameters of its _PREFER_INT16_OPS only"),
    "common::guard_negative_gather_indices": _gate({"gather", "gather_nd"}, reason="guards gather indices"),
    "common::canonicalize_inplace_pattern": _gate(
        {"coreml_update_state"}, reason="moves coreml_update_state ops"),
    "common::prefer_state_in_downstream": _gate(
        {"coreml_update_state"}, reason="re-points readers of a coreml_update_state's value"),
    "common::expand_dynamic_linear": _gate({"linear"}, reason="a linear with non-const weight -> matmul + add"),
    "mil_backend::fuse_activation_silu": _gate({"sigmoid"}, {"mul"}, reason="x * sigmoid(x) -> silu"),
    "mil_backend::fuse_pow2_sqrt": _gate({"pow"}, {"sqrt"}, reason="sqrt(pow(x, 2)) / pow(sqrt(x), 2) -> x"),
}

# Passes that run unconditionally: no op type they need (they act on any op, or on the function's
# inputs and outputs).
UNGATED: dict[str, str] = {
    "common::update_output_dtypes": "output dtypes of the function",
    "common::const_elimination": "any op whose value is known",
    "common::sanitize_input_output_names": "input and output names",
    "common::const_deduplication": "any pair of equal constants",
    "common::image_input_preprocess": "image inputs",
    "common::remove_redundant_ops": "any pair of ops with the same inputs",
    "common::dedup_op_and_var_names": "any name",
    "common::add_fp16_cast": "every float op (fp16 builds only)",
    FP16_CAST: "every float op (fp16 builds only)",
    "common::dead_code_elimination": "any op",
    "common::topological_reorder": "any op",
    "mil_backend::adjust_io_to_supported_types": "input and output dtypes",
    "mil_backend::insert_image_preprocessing_ops": "image inputs",
    "mil_backend::sanitize_name_strings": "any name",
    "nn_backend::handle_unused_inputs": "unused inputs",
}


# Passes that change nothing when run again on their own output (idempotent); a run of one is
# skipped when the pass run just before it (skipped passes aside, which touch nothing) in the same
# pipeline was itself. ``const_elimination`` is not one: a var it cannot replace gets a new unused
# const on every run. ``tests/test_passes.py`` runs each of these twice after every run on the op cases.
IDEMPOTENT: dict[str, str] = {
    "common::dead_code_elimination": "removes every op no output depends on, chains and nested blocks in "
                                     "one run (reverse order; a removed op's inputs are not marked used)",
}


def op_types(prog: Program) -> set:
    """Every op type of ``prog``: all functions, nested blocks included."""
    return {op.op_type for f in prog.functions.values() for b in _blocks(f) for op in b.operations}


def gate_closed(pass_name: str, present: set, gates: Optional[dict] = None) -> Optional[str]:
    """Why ``pass_name`` cannot change a program holding the op types ``present``; None if it can
    (``gates``: GATES unless given)."""
    gate = (GATES if gates is None else gates).get(pass_name)
    if gate is None:
        return None
    groups, reason = gate
    for group in groups:
        if group.isdisjoint(present):
            names = " or ".join(sorted(group)) if len(group) <= 4 else f"op of its {len(group)} anchor types"
            return f"no {names} ({reason})"
    return None


PASS_LOG = "_onnx2mil_pass_log"  # attribute of the program: [(pipeline, pass, None or why skipped)]
OP_TYPES_SEEN = "_onnx2mil_op_types"  # attribute of the program: the tracker's superset of its op types


def _gated_apply_pipeline(target: Program, original, present: set):
    """coremltools' ``PassPipelineManager.apply_pipeline`` (same loop, logs, progress bar and
    validation) that skips, for ``target`` only, a pass whose gate is closed, and logs every run.
    ``present``: a superset of the op types in ``target``, kept by ``_OpTypeTracker``."""
    from coremltools.converters.mil.mil.passes import pass_pipeline as module

    def apply_pipeline(prog, pass_pipeline):
        if prog is not target:
            return original(prog, pass_pipeline)
        if pass_pipeline is None:
            raise ValueError("The pass_pipeline cannot be None.")
        pass_pipeline.validate()
        prog.validate()
        module.logger.debug(f"Program before {pass_pipeline} pipeline:\n{prog}")
        log = getattr(prog, PASS_LOG)
        last = None  # the last pass run in this pipeline
        for pass_name in module.tqdm(pass_pipeline.passes, desc=f"Running MIL {pass_pipeline} pipeline",
                                     unit=" passes"):
            why = gate_closed(pass_name, present) if pass_name in GATES else None
            if why is None and pass_name in IDEMPOTENT and pass_name == last:
                why = f"ran just before (idempotent: {IDEMPOTENT[pass_name]})"
            if why is not None:
                log.append((str(pass_pipeline), pass_name, why))
                continue
            last = pass_name
            module.logger.debug(f'Performing pass: "{pass_name}"')
            pass_options = pass_pipeline.get_options(pass_name)
            if pass_options is not None:
                module.logger.debug(f"The graph pass options for {pass_name} is set to {pass_options}. "
                                    f"It will change the pass behavior. Make sure the option is intended.")
            if pass_name.startswith("experimental::"):
                module.logger.warning(f"The graph pass {pass_name} is under experimental development, "
                                      f"and the API could be changed in the future.")
            graph_pass = PASS_REGISTRY[pass_name]
            graph_pass.set_options(pass_options)
            try:
                graph_pass(prog)
            except Exception:
                module.logger.error(f"\n\nERROR - '{pass_name}' graph pass produces the following error:\n")
                raise
            log.append((str(pass_pipeline), pass_name, None))
            prog.validate(check_essential_scope=pass_name == "common::dead_code_elimination")
        module.logger.debug(f"Program after {pass_pipeline} pipeline:\n{prog}")

    return apply_pipeline


class _OpTypeTracker:
    """Keeps ``present`` a superset of the op types of ``prog`` while passes run, without walking
    the program before each gated pass (27 walks, ~0.1 s of the 115M BigVGAN's build): one walk at
    the start, then the type of every op inserted into a block of ``prog`` is added. Every op enters
    a block through ``Block._insert_op_before`` (the builder's only way in; passes that move ops,
    e.g. topological_reorder, move ops already counted). An op inserted into a block whose chain of
    enclosing ops does not reach a function (a nested block being built) counts too; only blocks of
    another program (the pattern programs of fuse_all_blocks) are left out. Removed ops are not
    taken out: a superset can only let a pass run that could be skipped, never the reverse.
    ``tests/test_passes.py`` checks the superset after every pass run."""

    def __init__(self, prog: Program):
        self.functions = {id(f) for f in prog.functions.values()}
        self.present = op_types(prog)

    def owns(self, block) -> bool:
        while block.outer_op is not None:
            block = block.outer_op.enclosing_block
            if block is None:
                return True  # a block under construction: counted, to be safe
        return id(block) in self.functions

    @contextlib.contextmanager
    def tracking(self):
        original = Block._insert_op_before
        tracker = self

        def insert(block, new_op, before_op=None):
            original(block, new_op, before_op)
            if tracker.owns(block):
                tracker.present.add(new_op.op_type)

        Block._insert_op_before = insert
        try:
            yield
        finally:
            Block._insert_op_before = original


_TYPE_MODULES = ("type_mapping", "type_list", "type_dict", "type_tensor", "type_tuple", "type_state")
_memo_depth = 0


def _memoized_type_info(original):
    """``get_type_info``, remembered for classes: a type class is a fixed description (coremltools
    makes one per dtype and shape, and keeps it), so its ``Type`` is too; the callers read it
    (``.name``, as a template parameter) and never change it. Instances and functions are not
    remembered (an instance's id can be reused once it is gone)."""
    memo: dict = {}

    def get_type_info(t):
        if isinstance(t, type):
            info = memo.get(t)
            if info is None:
                info = memo[t] = original(t)
            return info
        return original(t)

    return get_type_info


def _const_type_inference(self):
    """``Const.type_inference``, keeping the (type, value) pair for ``value_inference`` next."""
    value = self.val.val
    pair = self._get_type_val(value)
    self._onnx2mil_type_val = (value, pair)
    return pair[0]


def _const_value_inference(self):
    """``Const.value_inference``: the pair ``type_inference`` just worked out from the same value
    object, else worked out again."""
    value = self.val.val
    kept = self.__dict__.pop("_onnx2mil_type_val", None)
    if kept is not None and kept[0] is value:
        return kept[1][1]
    return self._get_type_val(value)[1]


@contextlib.contextmanager
def type_queries_memoized():
    """For the duration, coremltools' type modules call a memoized ``get_type_info`` and ``const``
    ops infer their type and value in one go (see the module docstring). Module globals and class
    attributes, so held under ``COREMLTOOLS_LOCK`` by the caller; re-entrant (the outermost use
    swaps and restores)."""
    global _memo_depth
    _memo_depth += 1
    if _memo_depth > 1:
        try:
            yield
        finally:
            _memo_depth -= 1
        return
    modules = [importlib.import_module(f"coremltools.converters.mil.mil.types.{m}") for m in _TYPE_MODULES]
    originals = [(m, m.get_type_info) for m in modules]
    fast = _memoized_type_info(originals[0][1])
    const_methods = Const.__dict__["type_inference"], Const.__dict__["value_inference"]
    for m, _ in originals:
        m.get_type_info = fast
    Const.type_inference, Const.value_inference = _const_type_inference, _const_value_inference
    try:
        yield
    finally:
        for m, original in originals:
            m.get_type_info = original
        Const.type_inference, Const.value_inference = const_methods
        _memo_depth -= 1


@contextlib.contextmanager
def passes_streamlined(prog: Program):
    """For the duration: ``prog``, its functions and blocks render as text only when coremltools'
    debug log would print them, and skip the per-pass re-derivation of nonreplaceable vars when the
    program holds no op that makes one (see the module docstring). Done by swapping the objects'
    classes for subclasses (``Block`` has slots, no instance attributes): other programs and blocks a
    pass creates meanwhile keep coremltools' behaviour. And the passes of ``GATES`` whose anchors
    are absent are skipped: ``PassPipelineManager.apply_pipeline`` and ``Block._insert_op_before``
    are replaced for the duration (class attributes, under ``COREMLTOOLS_LOCK`` like every use of
    coremltools by onnx2mil, restored on the way out); for other programs they do what they did."""
    untracked = not _tracks_nonreplaceable(prog)
    setattr(prog, PASS_LOG, [])
    tracker = _OpTypeTracker(prog)
    setattr(prog, OP_TYPES_SEEN, tracker.present)
    original = PassPipelineManager.__dict__["apply_pipeline"]
    PassPipelineManager.apply_pipeline = staticmethod(_gated_apply_pipeline(prog, original.__func__, tracker.present))
    subclass = {Block: _QuietUntrackedBlock if untracked else _QuietBlock,
                Function: _QuietUntrackedFunction if untracked else _QuietFunction,
                Program: _QuietProgram}
    swapped = [(obj, type(obj)) for obj in (prog, *(b for f in prog.functions.values() for b in _blocks(f)))
               if type(obj) in subclass]
    for obj, cls in swapped:
        obj.__class__ = subclass[cls]
    try:
        with tracker.tracking():
            yield
    finally:
        PassPipelineManager.apply_pipeline = original
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
