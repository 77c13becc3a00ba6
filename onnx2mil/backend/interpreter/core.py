"""The executor: runs a pymil Program (as saved, after coremltools' passes) with numpy kernels.

A program is compiled once into a plan per block (cached on the Program): const and constexpr_*
ops are evaluated at plan time, each other op becomes a step holding one callable with every
plan-time fact already bound — its kernel (or the kernel's specialization for this op, see
``kernels/registry.py``), its constant arguments, the names of the vars it reads, how to store its
outputs, and (top level) which vars nothing later reads, freed right after it. Running a plan is
a walk over the steps with one flat environment ``{var name: value}`` (MIL var names are unique
within a function): one call per op. A run that neither captures nor observes (``predict``) calls
the top-level block compiled into one generated Python function instead (:func:`_compile`): the
same step calls on local variables, dead ones deleted where the walk would free them. Each result
is cast to its var's dtype and its shape is checked against the var's static dims. fp16 tensor vars
hold float32 arrays of fp16 values (see ``fp16.py``): each float32 result is rounded to fp16 exactly
as ``astype(np.float16)`` would store it (rounding, subnormals, overflow to inf), so fp16 storage is
emulated bit for bit while kernels read float32 without a conversion; ops that only select or move
their (fp16) inputs' values skip the rounding (:data:`EXACT_OPS`). Values leave the interpreter
(outputs, captures, observers) as float16 arrays; fp16 inputs are widened on entry. A run ignores
numpy's floating-point warnings (overflow to inf is what fp16 storage does; kernels compute IEEE
results either way).

Values in the environment are in kernel form: numpy arrays for tensors, Python scalars (or str)
for scalar vars. Control-flow kernels run their nested blocks through :func:`run_block`.
"""
from __future__ import annotations

import contextvars
import weakref
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Mapping, Optional, Sequence

import numpy as np
from coremltools.converters.mil.mil import Block, Program, Var, types
from coremltools.converters.mil.mil.types.symbolic import is_symbolic

from ...errors import Onnx2MilError, UnsupportedMILOpError
from .fp16 import F16, F32, round_fp16
from .kernels.conv import MAX_CONVERTED_WEIGHT
from .kernels.registry import KERNELS, SPECIALIZERS


class InterpreterError(Onnx2MilError):
    """The interpreter cannot run the program on these inputs (bad inputs or a kernel contract break)."""


@dataclass(frozen=True)
class _VarSpec:
    """How to store a var's value: numpy dtype, scalar or tensor, and its static dims."""

    name: str
    np_dtype: Any            # numpy dtype, or None for values stored as they come (str, lists)
    scalar: bool
    rank: Optional[int]
    static_dims: tuple       # ((axis, size), ...) for the dims that are not symbolic
    shape: Optional[tuple] = None  # the full shape when no dim is symbolic
    wide: bool = False       # an fp16 tensor: held as a float32 array of fp16 values (kernel form)

    @classmethod
    def of(cls, var: Var) -> "_VarSpec":
        sym_type = var.sym_type
        if types.is_tensor(sym_type):
            shape = var.shape
            dims = tuple((i, int(d)) for i, d in enumerate(shape) if not is_symbolic(d) and int(d) >= 0)
            full = tuple(d for _, d in dims) if len(dims) == len(shape) else None
            np_dtype = _np_dtype(var.dtype)
            return cls(var.name, np_dtype, False, len(shape), dims, full, np_dtype == F16)
        if types.is_scalar(sym_type) and not types.is_str(sym_type):
            return cls(var.name, _np_dtype(sym_type), True, 0, ())
        return cls(var.name, None, False, None, ())


def _np_dtype(builtin) -> np.dtype:
    return np.dtype(types.nptype_from_builtin(builtin))


def kernel_spec(spec: _VarSpec) -> _VarSpec:
    """The spec of a var's kernel form: an fp16 tensor's is a float32 tensor's."""
    return replace(spec, np_dtype=F32, wide=False) if spec.wide else spec


def to_kernel_form(value, spec: _VarSpec, op_desc: str, exact: bool = False):
    """Cast a kernel result to its var's dtype; scalars become Python scalars. Checks the shape.
    An fp16 tensor becomes a float32 array of fp16 values (a float32 result rounded as
    ``astype(np.float16)`` rounds; ``exact``: a float32 result already holds fp16 values)."""
    if spec.np_dtype is None:
        return value
    if spec.wide:
        if isinstance(value, np.ndarray) and value.dtype == F32:
            arr = value if exact else round_fp16(value)
        else:
            with np.errstate(over="ignore", invalid="ignore"):  # overflow to inf is what fp16 storage does
                arr = np.asarray(value).astype(F16, copy=False).astype(F32)
    elif isinstance(value, np.ndarray) and value.dtype == spec.np_dtype:
        arr = value
    elif spec.np_dtype == np.float16:
        with np.errstate(over="ignore", invalid="ignore"):  # fp16 overflow to inf is what fp16 storage does
            arr = np.asarray(value).astype(spec.np_dtype, copy=False)
    else:
        arr = np.asarray(value).astype(spec.np_dtype, copy=False)
    if spec.scalar:
        if arr.size != 1:
            raise InterpreterError(f"{op_desc}: output '{spec.name}' is a scalar but the kernel returned shape {arr.shape}")
        return arr.reshape(()).item()
    if arr.shape == spec.shape:
        return arr
    if arr.ndim != spec.rank or any(arr.shape[i] != d for i, d in spec.static_dims):
        expected = ["?"] * (spec.rank or 0)
        for i, d in spec.static_dims:
            expected[i] = d
        raise InterpreterError(f"{op_desc}: output '{spec.name}' has shape {arr.shape}, "
                               f"the program declares ({', '.join(map(str, expected))})")
    return arr


def to_array(value, spec: Optional[_VarSpec] = None) -> np.ndarray:
    """Kernel form -> numpy array of the var's dtype (scalars as 0-d arrays; an fp16 tensor's
    float32 values as float16, exactly)."""
    if isinstance(value, np.ndarray):
        if spec is not None and spec.wide and value.dtype != F16:
            return value.astype(F16)
        return value
    if spec is not None and spec.np_dtype is not None:
        return np.asarray(value, dtype=spec.np_dtype)
    return np.asarray(value)


def _kernel_arg(value):
    """A const or default value in kernel form: arrays for tensors, Python scalars for scalars."""
    if isinstance(value, (list, tuple, range)):
        return np.asarray(value)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind in "biufU":
        return value.item()
    return value


@dataclass
class _Step:
    op: Any
    run: Callable             # run(*values of ``reads``) -> the kernel's result
    reads: tuple              # names of the vars the op reads, in ``run``'s argument order
    store: Callable           # store(env, result): cast to each output var's dtype, check, bind
    outputs: list             # [_VarSpec]
    desc: str
    call: Callable = None     # call(env): store(env, run(*values of reads)) without building an argument list
    exact: bool = False       # fp16 results need no rounding (see _exact)


@dataclass
class _BlockPlan:
    steps: list
    inputs: list              # [_VarSpec] of the block's inputs
    outputs: list             # var names of the block's outputs
    frees: list = field(default_factory=list)  # per step: vars no later step reads (top level only)
    program: list = field(default_factory=list)  # per step: (run, reads, store, output names, frees)
    calls: list = field(default_factory=list)    # per step: (call(env): read, run and store in one, frees)


@dataclass
class _ProgramPlan:
    consts: dict = field(default_factory=dict)      # var name -> value in kernel form
    blocks: dict = field(default_factory=dict)      # id(block) -> _BlockPlan
    specs: dict = field(default_factory=dict)       # var name -> _VarSpec
    inputs: list = field(default_factory=list)      # (name, _VarSpec, declared shape) of the function inputs
    outputs: list = field(default_factory=list)     # (name, _VarSpec) of the function outputs
    forward: Optional[Callable] = None              # the top-level block as one Python function (see _compile)


_PLANS: "weakref.WeakKeyDictionary[Program, dict]" = weakref.WeakKeyDictionary()
_ACTIVE: contextvars.ContextVar = contextvars.ContextVar("onnx2mil_interpreter_active")


def _is_folded(op) -> bool:
    return op.op_type == "const" or op.op_type.startswith("constexpr_")


def _walk(block: Block):
    for op in block.operations:
        yield op
        for b in op.blocks:
            yield from _walk(b)


def check_supported(block: Block) -> None:
    """Raise UnsupportedMILOpError for the first op (depth first) that has no kernel."""
    missing = [op for op in _walk(block) if op.op_type not in KERNELS]
    if missing:
        others = sorted({op.op_type for op in missing[1:]} - {missing[0].op_type})
        reason = f"no kernel registered; other op types without a kernel: {', '.join(others)}" if others else \
            "no kernel registered"
        raise UnsupportedMILOpError(missing[0].op_type, missing[0].name, reason)


def _defaults(op) -> dict:
    return {k: v for k, v in op.default_inputs().items() if not k.startswith("_")}


def _generic_run(op, kernel: Callable, static: dict, dynamic: list, tuples: list) -> Callable:
    """``run(*values)`` calling ``kernel(op, **arguments)``: the plan-time arguments, then the
    dynamic ones in ``dynamic`` order, then each tuple input's dynamic items in order."""
    names = [name for name, _ in dynamic]
    if not tuples:
        if not names:
            return lambda: kernel(op, **static)
        if len(names) == 1 and names[0] not in static:
            (only,) = names
            return lambda value: kernel(op, **static, **{only: value})

        def run(*values):
            args = dict(static)
            args.update(zip(names, values))
            return kernel(op, **args)

        return run

    def run_with_tuples(*values):
        args = dict(static)
        args.update(zip(names, values))
        rest = iter(values[len(names):])
        for name, items in tuples:
            args[name] = [next(rest) if var_name is not None else value for var_name, value in items]
        return kernel(op, **args)

    return run_with_tuples


# Ops whose results only select, move or copy values of their inputs (or produce 0, ±inf): when every
# float input is fp16, a float32 result of theirs already holds fp16 values and needs no rounding.
EXACT_OPS = frozenset({
    "reshape", "reshape_like", "expand_dims", "squeeze", "transpose", "reverse", "reverse_sequence",
    "slice_by_index", "slice_by_size", "slice_update", "concat", "split", "stack", "tile", "flatten2d",
    "depth_to_space", "space_to_depth", "pixel_shuffle", "pixel_unshuffle", "space_to_batch", "batch_to_space",
    "sliding_windows", "gather", "gather_nd", "gather_along_axis", "select", "pad", "band_part",
    "identity", "max_pool", "relu", "maximum", "minimum", "reduce_max", "reduce_min", "clip", "abs",
})


def _exact(op) -> bool:
    """Whether ``op``'s fp16 results need no rounding: an EXACT_OPS op whose float inputs are all fp16."""
    if op.op_type not in EXACT_OPS:
        return False
    for var in op.inputs.values():
        for v in (var if isinstance(var, (list, tuple)) else (var,)):
            dtype = v.dtype
            if types.is_float(dtype) and dtype != types.fp16:
                return False
    return True


def _store(outputs: list, desc: str, exact: bool = False) -> Callable:
    """``store(env, result)`` for a step: the result cast to each output var's dtype, its shape
    checked, bound under the var's name. A fully static tensor already of its var's dtype and shape
    is bound as is; an array of its static shape is cast with one ``astype``; for an fp16 tensor,
    a float32 array of its static shape is rounded (bound as is when ``exact``)."""
    if len(outputs) != 1:
        def store_all(env, result):
            if not isinstance(result, tuple):
                result = (result,)
            if len(result) != len(outputs):
                raise InterpreterError(f"{desc}: kernel returned {len(result)} values for {len(outputs)} outputs")
            for spec, value in zip(outputs, result):
                env[spec.name] = to_kernel_form(value, spec, desc, exact)

        return store_all
    (spec,) = outputs
    name, dtype, shape = spec.name, spec.np_dtype, spec.shape

    def store_checked(env, value):
        if isinstance(value, tuple):
            if len(value) != 1:
                raise InterpreterError(f"{desc}: kernel returned {len(value)} values for 1 outputs")
            (value,) = value
        env[name] = to_kernel_form(value, spec, desc, exact)

    if dtype is None or spec.scalar or shape is None:
        return store_checked
    if spec.wide:
        if exact:
            def store_exact(env, value):
                if type(value) is np.ndarray and value.shape == shape and value.dtype == F32:
                    env[name] = value
                else:
                    store_checked(env, value)

            return store_exact

        def store_rounded(env, value):
            if type(value) is np.ndarray and value.shape == shape and value.dtype == F32:
                env[name] = round_fp16(value)
            else:
                store_checked(env, value)

        return store_rounded

    def store(env, value):
        if type(value) is np.ndarray and value.shape == shape:
            env[name] = value if value.dtype == dtype else value.astype(dtype)
        else:
            store_checked(env, value)

    return store


def _call(run: Callable, reads: tuple, store: Callable, outputs: list) -> Callable:
    """``call(env)`` = ``store(env, run(*[env[name] for name in reads]))``, with the usual case (one
    read, one static-shape output) stored inline: one Python call per op besides the kernel's."""
    spec = outputs[0] if len(outputs) == 1 else None
    if len(reads) == 1 and spec is not None and spec.np_dtype is not None and not spec.scalar \
            and spec.shape is not None and not spec.wide:
        (read,) = reads
        name, dtype, shape = spec.name, spec.np_dtype, spec.shape

        def call_one(env):
            value = run(env[read])
            if type(value) is np.ndarray and value.shape == shape:
                env[name] = value if value.dtype == dtype else value.astype(dtype)
            else:
                store(env, value)

        return call_one
    if len(reads) == 1:
        (read,) = reads
        return lambda env: store(env, run(env[read]))
    if len(reads) == 2:
        first, second = reads
        return lambda env: store(env, run(env[first], env[second]))
    return lambda env: store(env, run(*[env[name] for name in reads]))


class _Planner:
    def __init__(self, plan: _ProgramPlan):
        self.plan = plan

    def block(self, block: Block) -> _BlockPlan:
        steps = []
        for op in block.operations:
            for b in op.blocks:
                self.block(b)
            if _is_folded(op):
                self._fold(op)
            else:
                steps.append(self._step(op))
        block_inputs = list(block.inputs.values()) if isinstance(block.inputs, dict) else list(block.inputs)
        for var in block_inputs:
            self.plan.specs[var.name] = _VarSpec.of(var)
        bp = _BlockPlan(steps, [_VarSpec.of(v) for v in block_inputs], [v.name for v in block.outputs])
        bp.program = [(st.run, st.reads, st.store, tuple(o.name for o in st.outputs), ()) for st in steps]
        bp.calls = [(st.call, ()) for st in steps]
        self.plan.blocks[id(block)] = bp
        return bp

    def _resolve(self, op):
        static, dynamic, tuples = {}, [], []
        for name, value in _defaults(op).items():
            static[name] = _kernel_arg(value)
        for name, var in op.inputs.items():
            if isinstance(var, (list, tuple)):
                tuples.append((name, [(None, self.plan.consts[v.name]) if v.name in self.plan.consts
                                      else (v.name, None) for v in var]))
                static.pop(name, None)
            elif var.name in self.plan.consts:
                static[name] = self.plan.consts[var.name]
            else:
                dynamic.append((name, var.name))
                static.pop(name, None)
        return static, dynamic, tuples

    def _step(self, op) -> _Step:
        static, dynamic, tuples = self._resolve(op)
        outputs = [_VarSpec.of(v) for v in op.outputs]
        for spec in outputs:
            self.plan.specs[spec.name] = spec
        desc = f"op '{op.name}' ({op.op_type})"
        reads = tuple(var_name for _, var_name in dynamic) + \
            tuple(var_name for _, items in tuples for var_name, _ in items if var_name is not None)
        run = None
        kernel, factory = SPECIALIZERS.get(op.op_type, (None, None))
        if factory is not None and kernel is KERNELS[op.op_type] and not tuples:
            specs = [(name, kernel_spec(self.plan.specs.get(var_name) or _VarSpec.of(op.inputs[name])))
                     for name, var_name in dynamic]
            run = factory(op, static, specs)
        if run is None:
            run = _generic_run(op, KERNELS[op.op_type], static, dynamic, tuples)
        exact = _exact(op)
        store = _store(outputs, desc, exact)
        return _Step(op, run, reads, store, outputs, desc, _call(run, reads, store, outputs), exact)

    def _fold(self, op) -> None:
        static, dynamic, tuples = self._resolve(op)
        desc = f"op '{op.name}' ({op.op_type})"
        if dynamic or any(n is not None for _, items in tuples for n, _ in items):
            raise InterpreterError(f"{desc}: a constant op reads a non-constant input")
        outputs = [_VarSpec.of(v) for v in op.outputs]
        for spec in outputs:
            self.plan.specs[spec.name] = spec
        result = _generic_run(op, KERNELS[op.op_type], static, [], tuples)()
        (first,) = outputs if len(outputs) == 1 else (None,)
        if first is not None and first.wide and type(result) is np.ndarray and result.dtype == F16 \
                and result.size > MAX_CONVERTED_WEIGHT and result.shape == first.shape:
            self.plan.consts[first.name] = result   # kept as it is (below), without widening it first
            return
        _store(outputs, desc)(self.plan.consts, result)
        for spec in outputs:   # a large fp16 constant stays float16 (kernels widen it), as kernels/conv.py's rule
            value = self.plan.consts[spec.name]
            if spec.wide and value.size > MAX_CONVERTED_WEIGHT:
                self.plan.consts[spec.name] = value.astype(F16)


def _reads(op) -> set:
    """Names of the vars an op reads, including those read inside its nested blocks."""
    names = set()
    for var in op.inputs.values():
        names.update(v.name for v in (var if isinstance(var, (list, tuple)) else (var,)))
    for block in op.blocks:
        for inner in _walk(block):
            names |= _reads(inner)
        names.update(v.name for v in block.outputs)
    return names


def _liveness(bp: _BlockPlan, keep: set) -> None:
    """Fill ``bp.frees``: after step i, drop the vars nothing later reads (except ``keep``)."""
    last = {spec.name: -1 for spec in bp.inputs}
    for i, step in enumerate(bp.steps):
        for spec in step.outputs:
            last[spec.name] = i
        for name in _reads(step.op):
            if name in last:
                last[name] = i
    bp.frees = [[] for _ in bp.steps]
    for name, i in last.items():
        if name not in keep and i >= 0:
            bp.frees[i].append(name)
    bp.program = [entry[:4] + (tuple(frees),) for entry, frees in zip(bp.program, bp.frees)]
    bp.calls = [(call, tuple(frees)) for (call, _), frees in zip(bp.calls, bp.frees)]


def _plan_for(prog: Program, function: str) -> tuple[_ProgramPlan, Any]:
    if function not in prog.functions:
        raise InterpreterError(f"program has no function '{function}' (has {sorted(prog.functions)})")
    func = prog.functions[function]
    per_prog = _PLANS.setdefault(prog, {})
    if function not in per_prog:
        check_supported(func)
        plan = _ProgramPlan()
        top = _Planner(plan).block(func)
        _liveness(top, {v.name for v in func.outputs})
        plan.inputs = [(name, _VarSpec.of(var), var.shape if types.is_tensor(var.sym_type) else ())
                       for name, var in func.inputs.items()]
        plan.outputs = [(v.name, plan.specs.get(v.name)) for v in func.outputs]
        plan.forward = _compile(plan, top)
        per_prog[function] = plan
    return per_prog[function], func


def _binder(outputs: list, desc: str, exact: bool = False) -> Callable:
    """``bind(result) -> (value of each output var)``: what ``_store`` would bind, returned."""
    store, names = _store(outputs, desc, exact), [spec.name for spec in outputs]

    def bind(result):
        scratch: dict = {}
        store(scratch, result)
        return tuple(scratch[name] for name in names)

    return bind


def _view_result(method: tuple, source: Optional[_VarSpec], spec: Optional[_VarSpec]) -> bool:
    """Whether ``x.reshape(shape)`` / ``x.transpose(perm)`` of a value of ``source`` (bound checked: an
    ndarray of its dtype and static shape) is already what ``spec`` declares (numpy gives a view of
    that dtype and of that shape or raises), so binding it needs no check."""
    if source is None or spec is None or source.shape is None or spec.shape is None or source.scalar \
            or spec.scalar or source.np_dtype is None or source.np_dtype != spec.np_dtype:
        return False
    name, argument = method
    argument = tuple(int(a) for a in np.asarray(argument).reshape(-1))
    if name == "reshape":
        return argument == spec.shape and all(d >= 0 for d in argument)
    if name == "transpose":
        return sorted(argument) == list(range(len(source.shape))) and \
            tuple(source.shape[a] for a in argument) == spec.shape
    return False


def _compile(plan: _ProgramPlan, bp: _BlockPlan) -> Optional[Callable]:
    """The top-level block as one generated function ``forward(*inputs) -> (outputs...)``: each
    step is a call of its ``run`` on local variables, its result bound as ``_call`` binds it (one
    static-shape tensor inline, anything else through ``_store``), and the vars nothing later reads
    deleted where ``_liveness`` frees them. The same calls on the same values as the environment
    walk, less the dictionary traffic. None when an op has nested blocks (their kernels read the
    environment through ``run_block``)."""
    if any(op.blocks for step in bp.steps for op in [step.op]):
        return None
    names: dict = {}
    namespace: dict = {"_nd": np.ndarray, "_f32": F32, "_round": round_fp16}
    args = []
    lines = []
    for i, (name, spec, _) in enumerate(plan.inputs):
        names[name] = f"i{i}"
        args.append(names[name])
        if spec.wide:     # fp16 inputs arrive as float16 arrays (static_inputs' dtypes)
            lines.append(f"i{i} = i{i}.astype(_f32)")
    for k, (step, frees) in enumerate(zip(bp.steps, bp.frees)):
        if any(read not in names for read in step.reads):
            return None
        reads = ", ".join(names[read] for read in step.reads)
        namespace[f"run{k}"] = step.run
        namespace[f"bind{k}"] = _binder(step.outputs, step.desc, step.exact)
        targets = []
        for j, spec in enumerate(step.outputs):
            names[spec.name] = f"v{k}_{j}"
            targets.append(names[spec.name])
        spec = step.outputs[0] if len(step.outputs) == 1 else None
        call = f"run{k}({reads})"
        method = getattr(step.run, "method", None)    # run(x) is x.<method>(argument): call that directly
        if method is not None and len(step.reads) == 1 and method[0].isidentifier():
            namespace[f"A{k}"] = method[1]
            call = f"{reads}.{method[0]}(A{k})"
        if method is not None and _view_result(method, plan.specs.get(step.reads[0]), spec):
            lines.append(f"{targets[0]} = {call}")    # a view of a checked value: its dtype and shape are known
        elif spec is not None and spec.wide and spec.shape is not None:
            namespace[f"S{k}"] = spec.shape
            lines += [f"r = {call}",
                      f"if type(r) is _nd and r.shape == S{k} and r.dtype == _f32:",
                      f"    {targets[0]} = r" if step.exact else f"    {targets[0]} = _round(r)",
                      "else:",
                      f"    {targets[0]}, = bind{k}(r)"]
        elif spec is not None and spec.np_dtype is not None and not spec.scalar and spec.shape is not None:
            namespace[f"S{k}"], namespace[f"D{k}"] = spec.shape, spec.np_dtype
            lines += [f"r = {call}",
                      f"if type(r) is _nd and r.shape == S{k}:",
                      f"    {targets[0]} = r if r.dtype == D{k} else r.astype(D{k})",
                      "else:",
                      f"    {targets[0]}, = bind{k}(r)"]
        else:
            lines.append(f"{', '.join(targets)}, = bind{k}(run{k}({reads}))")
        if frees:
            lines.append("del " + ", ".join(names[name] for name in frees))
    results = []
    for m, (name, _) in enumerate(plan.outputs):
        if name in names:
            results.append(names[name])
        elif name in plan.consts:
            namespace[f"c{m}"] = plan.consts[name]
            results.append(f"c{m}")
        else:
            return None
    lines.append("r = None")
    lines.append(f"return ({', '.join(results)},)")
    source = f"def forward({', '.join(args)}):\n" + "".join(f"    {line}\n" for line in lines)
    exec(compile(source, "<onnx2mil planned forward>", "exec"), namespace)
    return namespace["forward"]


def _observe(callback: Observer, name: str, env: dict, spec: Optional[_VarSpec]) -> None:
    replacement = callback(name, to_array(env[name], spec))
    if replacement is not None:
        env[name] = to_kernel_form(replacement, spec, f"observer of '{name}'") if spec else replacement


def _execute(bp: _BlockPlan, env: dict, free: bool = False, observe: Optional[dict] = None,
             specs: Optional[dict] = None) -> None:
    if not observe:
        if free:
            for call, frees in bp.calls:
                call(env)
                for name in frees:
                    del env[name]
        else:
            for call, _ in bp.calls:
                call(env)
        return
    for run, reads, store, names, frees in bp.program:
        store(env, run(*[env[name] for name in reads]))
        for name in names:
            if name in observe:
                _observe(observe[name], name, env, specs.get(name))
        if free:
            for name in frees:
                del env[name]


def run_block(block: Block, inputs: Sequence = ()) -> list:
    """Run a nested block of the running program: bind its inputs, return its outputs in kernel form.

    For control-flow kernels (cond, while_loop); the block sees every var of the enclosing scopes.
    """
    active = _ACTIVE.get(None)
    if active is None:
        raise InterpreterError("run_block is only available while a program runs")
    plan, env = active
    bp = plan.blocks[id(block)]
    if len(inputs) != len(bp.inputs):
        raise InterpreterError(f"block '{block.name}' takes {len(bp.inputs)} inputs, got {len(inputs)}")
    for spec, value in zip(bp.inputs, inputs):
        env[spec.name] = to_kernel_form(value, spec, f"block '{block.name}' input")
    _execute(bp, env)
    return [env[name] for name in bp.outputs]


def _check_inputs(plan: _ProgramPlan, inputs: dict) -> dict:
    placeholders = [name for name, _, _ in plan.inputs]
    missing = [n for n in placeholders if n not in inputs]
    extra = [n for n in inputs if n not in placeholders]
    if missing or extra:
        raise InterpreterError(f"inputs mismatch: missing {missing}, unexpected {extra}; "
                               f"the program takes {list(placeholders)}")
    symbols: dict = {}
    out = {}
    for name, spec, shape in plan.inputs:
        value = np.asarray(inputs[name])
        if spec.np_dtype is not None and value.dtype != spec.np_dtype:
            if value.dtype.kind in "iu" and spec.np_dtype.kind in "iu":
                info = np.iinfo(spec.np_dtype)
                if value.size and (value.min() < info.min or value.max() > info.max):
                    raise InterpreterError(f"input '{name}': values outside the {spec.np_dtype} range "
                                           f"[{info.min}, {info.max}] of the program's placeholder")
            value = value.astype(spec.np_dtype)
        if value.ndim != len(shape):
            raise InterpreterError(f"input '{name}' has shape {value.shape}, the program takes rank {len(shape)} "
                                   f"{tuple(str(d) for d in shape)}")
        for axis, dim in enumerate(shape):
            if is_symbolic(dim):
                bound = symbols.setdefault(dim, value.shape[axis])
                if bound != value.shape[axis]:
                    raise InterpreterError(f"input '{name}' axis {axis}: symbolic dim {dim} is {bound} in another "
                                           f"input but {value.shape[axis]} here")
            elif int(dim) != value.shape[axis]:
                raise InterpreterError(f"input '{name}' has shape {value.shape}, the program takes "
                                       f"{tuple(str(d) for d in shape)}")
        out[name] = value if not spec.scalar else value.item()
    return out


def _widened(plan: _ProgramPlan, inputs: dict) -> dict:
    """Checked inputs in kernel form: an fp16 tensor's float16 array as float32 (its values exact)."""
    return {name: inputs[name].astype(F32) if spec.wide else inputs[name] for name, spec, _ in plan.inputs}


Observer = Callable[[str, np.ndarray], Optional[np.ndarray]]


def run_program(prog: Program, inputs: dict, *, capture: bool = False, function: str = "main",
                observe: Optional[Mapping[str, Observer]] = None) -> dict:
    """Execute ``prog``'s ``function`` on ``inputs`` (keyed by MIL input names).

    Returns the function's outputs ``{MIL var name: array}``; with ``capture=True`` every var of
    the program instead: function inputs (after dtype conversion), consts and every op output,
    nested blocks included (for a loop body: its last iteration). Raises UnsupportedMILOpError
    before executing anything if an op has no kernel; InterpreterError on bad inputs.

    ``observe``: ``{var name: callback(name, value)}`` for vars of the function's top-level block
    (consts included), called as soon as the var has its value. A callback returning an array
    replaces the value for every later op (teacher forcing); returning None keeps it. Values no
    later op reads are freed as the run goes, so observing costs no memory.
    """
    plan, func = _plan_for(prog, function)
    if not capture and not observe and plan.forward is not None:
        return run_checked(prog, _check_inputs(plan, inputs), function)
    env = dict(plan.consts)
    env.update(_widened(plan, _check_inputs(plan, inputs)))
    observe = dict(observe or {})
    for name in [n for n in observe if n in env]:
        _observe(observe.pop(name), name, env, plan.specs.get(name))
    token = _ACTIVE.set((plan, env))
    try:
        with np.errstate(all="ignore"):
            _execute(plan.blocks[id(func)], env, free=not capture, observe=observe, specs=plan.specs)
    finally:
        _ACTIVE.reset(token)
    if capture:
        return {name: to_array(value, plan.specs.get(name)) for name, value in env.items()}
    return {v.name: to_array(env[v.name], plan.specs.get(v.name)) for v in func.outputs}


def static_inputs(prog: Program, function: str = "main") -> Optional[dict]:
    """``{input name: (numpy dtype, shape)}`` when every input of ``function`` is a tensor of fully
    static shape (the inputs :func:`run_checked` takes), else None. Plans the function."""
    plan, _ = _plan_for(prog, function)
    out = {}
    for name, spec, _ in plan.inputs:
        if spec.scalar or spec.np_dtype is None or spec.shape is None:
            return None
        out[name] = (spec.np_dtype, spec.shape)
    return out


def planned_forward(prog: Program, function: str = "main") -> tuple:
    """(forward, [(output name, _VarSpec)]): the generated function of :func:`run_checked` (None
    when the block has none), taking the inputs in :func:`static_inputs` order (arrays of those
    dtypes and shapes, under ``np.errstate(all="ignore")``) and returning the outputs in kernel form."""
    plan, _ = _plan_for(prog, function)
    return plan.forward, plan.outputs


def run_checked(prog: Program, inputs: dict, function: str = "main") -> dict:
    """:func:`run_program` without capture or observers, for inputs the caller has checked: exactly
    the function's inputs, each a numpy array of the dtype and shape :func:`static_inputs` gives
    (what ``_check_inputs`` would pass unchanged). Returns the function's outputs by var name."""
    plan, func = _plan_for(prog, function)
    if plan.forward is not None:
        with np.errstate(all="ignore"):
            values = plan.forward(*[inputs[name] for name, _, _ in plan.inputs])
        return {name: to_array(value, spec) for (name, spec), value in zip(plan.outputs, values)}
    env = dict(plan.consts)
    env.update(_widened(plan, inputs))
    token = _ACTIVE.set((plan, env))
    try:
        with np.errstate(all="ignore"):
            for call, frees in plan.blocks[id(func)].calls:
                call(env)
                for name in frees:
                    del env[name]
    finally:
        _ACTIVE.reset(token)
    return {name: to_array(env[name], spec) for name, spec in plan.outputs}
