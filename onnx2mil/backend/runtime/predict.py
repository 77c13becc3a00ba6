"""``predict``: run a converted model on the MIL interpreter (any platform) or on CoreML (macOS).

Inputs and outputs are keyed by ONNX names, through the name map onnx2mil writes into the model's
metadata; a bare pymil Program has no name map and is keyed by MIL names. ONNX int64/float64
inputs are converted to the program's 32-bit dtypes (an int64 value outside int32 is an error).
Input shapes are checked against the model's declared shapes (RangeDim bounds, enumerated
shapes) as CoreML checks them: outside them, ``InputShapeError``.
"""
from __future__ import annotations

import os
import weakref
from collections import OrderedDict
from pathlib import Path
from typing import Mapping, Optional, Union

import coremltools as ct
import numpy as np
from coremltools.converters.mil.mil import Program, types

from ...errors import InputError, InputShapeError, OptionError, PackageError
from ..convert import pipeline
from ..interpreter import run_program
from ..interpreter.core import planned_forward, run_checked, static_inputs, to_array

ANE_EMULATION = "mil-ane"  # the Neural Engine *emulated* on the interpreter (ane_emulation.py): labelled so wherever shown
RUNTIMES = ("mil", ANE_EMULATION, "coreml")

_BY_MODEL: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_BY_PATH: "OrderedDict[tuple, tuple]" = OrderedDict()
_PATH_CACHE_SIZE = 4
_FAST: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()  # MLModel or Program -> _fast_runner(...) or None
_NO_FAST = object()


def _fast_runner(prog: Program, name_map: Optional[dict], declared: dict):
    """``run(inputs) -> {output name: array}``, or None from ``run`` when ``inputs`` (a dict) is not
    exactly one numpy array of the program's dtype and static shape per input: such inputs pass
    every check of ``predict`` unchanged, so they skip them (anything else takes the checked path).
    None when an input has no single static shape (declared ranged or enumerated, symbolic, a
    scalar fed as (1,))."""
    specs = static_inputs(prog)
    if specs is None:
        return None
    names = name_map["inputs"] if name_map else {name: name for name in specs}
    if sorted(names.values()) != sorted(specs) or (name_map and name_map.get("scalar_inputs")):
        return None
    order = list(specs)
    expected = {}
    for onnx_name, mil_name in names.items():
        dtype, shape = specs[mil_name]
        allowed = declared.get(mil_name)
        if allowed is not None and allowed != tuple((d, d) for d in shape):
            return None
        expected[onnx_name] = (order.index(mil_name), dtype, shape)
    if name_map:
        output_names = list(name_map["outputs"].items())
    else:
        output_names = [(v.name, v.name) for v in prog.functions["main"].outputs]
    count = len(expected)
    forward, plan_outputs = planned_forward(prog)   # forward(*inputs in ``order``) -> the outputs in plan order
    position = {name: i for i, (name, _) in enumerate(plan_outputs)}
    outputs = [(name, position[mil_name], plan_outputs[position[mil_name]][1]) for name, mil_name in output_names] \
        if forward is not None and all(m in position for _, m in output_names) else None
    if outputs is None:
        forward = None

    def run(inputs: dict) -> Optional[dict]:
        if len(inputs) != count:
            return None
        args = [None] * count
        for name, value in inputs.items():
            entry = expected.get(name)
            if entry is None or type(value) is not np.ndarray or value.dtype != entry[1] or value.shape != entry[2]:
                return None
            args[entry[0]] = value
        if forward is None:
            values = run_checked(prog, dict(zip(order, args)))
            return {name: values[mil_name] for name, mil_name in output_names}
        with np.errstate(all="ignore"):
            values = forward(*args)
        return {name: to_array(values[i], spec) for name, i, spec in outputs}

    return run


def _load(model) -> tuple[Program, Optional[dict], dict]:
    """(saved program, name map or None, declared input shapes), cached per MLModel object and
    per package on disk."""
    if isinstance(model, Program):
        return model, None, {}
    if isinstance(model, ct.models.MLModel):
        if model not in _BY_MODEL:
            _BY_MODEL[model] = (pipeline.load_saved_program(model), _name_map(model), declared_shapes(model))
        return _BY_MODEL[model]
    if not isinstance(model, (str, os.PathLike)):
        raise OptionError("model", f"must be an MLModel, a .mlpackage path or a Program, not {type(model).__name__}")
    path = Path(model).resolve()
    if not path.exists():
        raise PackageError(f"{path}: no such .mlpackage")
    key = (str(path),) + _stamp(path)
    if key not in _BY_PATH:
        mlmodel = pipeline.open_model(path)
        _BY_PATH[key] = (pipeline.load_saved_program(mlmodel), _name_map(mlmodel), declared_shapes(mlmodel))
        while len(_BY_PATH) > _PATH_CACHE_SIZE:
            _BY_PATH.popitem(last=False)
    _BY_PATH.move_to_end(key)
    return _BY_PATH[key]


def _stamp(path: Path) -> tuple:
    """Modification times and sizes of the package's files (opening a package rewrites its
    Manifest.json, so only the model and weights count)."""
    data = path / "Data" if path.is_dir() else path
    files = sorted(p for p in data.rglob("*") if p.is_file()) if data.is_dir() else [data] if data.exists() else []
    return tuple((str(f.relative_to(path.parent)), f.stat().st_mtime_ns, f.stat().st_size) for f in files)


def _name_map(mlmodel) -> Optional[dict]:
    if pipeline.META_NAME_MAP not in mlmodel.user_defined_metadata:
        return None
    return pipeline.read_name_map(mlmodel)


def declared_shapes(mlmodel) -> dict:
    """{MIL input name: what the spec allows}: ((lower, upper) per axis) for a fixed or ranged
    shape (upper None: unbounded), or a list of shapes when enumerated."""
    out = {}
    for desc in mlmodel.get_spec().description.input:
        if desc.type.WhichOneof("Type") != "multiArrayType":
            continue
        array = desc.type.multiArrayType
        flexibility = array.WhichOneof("ShapeFlexibility")
        if flexibility == "enumeratedShapes":
            out[desc.name] = [tuple(s.shape) for s in array.enumeratedShapes.shapes]
        elif flexibility == "shapeRange":
            out[desc.name] = tuple((r.lowerBound, r.upperBound if r.upperBound >= 0 else None)
                                   for r in array.shapeRange.sizeRanges)
        else:
            out[desc.name] = tuple((d, d) for d in array.shape)
    return out


def check_input_shapes(inputs: Mapping[str, np.ndarray], declared: dict, name_map: Optional[dict]) -> None:
    """Raise InputShapeError for the first input (ONNX name) whose shape the model does not take."""
    names = name_map["inputs"] if name_map else {k: k for k in inputs}
    scalars = set(name_map.get("scalar_inputs", ())) if name_map else set()
    for name, value in inputs.items():
        allowed = declared.get(names.get(name))
        if allowed is None:
            continue
        shape = (1,) if name in scalars and np.ndim(value) == 0 else tuple(np.shape(value))
        if isinstance(allowed, list):
            if shape not in allowed:
                raise InputShapeError(name, np.shape(value), "one of " + ", ".join(map(str, allowed)))
            continue
        if len(shape) != len(allowed) or any(d < lo or (hi is not None and d > hi) for d, (lo, hi) in zip(shape, allowed)):
            dims = ", ".join(str(lo) if lo == hi else f"{lo}..{'' if hi is None else hi}" for lo, hi in allowed)
            raise InputShapeError(name, np.shape(value), f"rank {len(allowed)} ({dims})")


def to_mil_inputs(inputs: Mapping[str, np.ndarray], name_map: Optional[dict]) -> dict:
    """ONNX-named inputs -> MIL-named (identity without a name map)."""
    if not isinstance(inputs, Mapping):
        raise InputError(None, f"inputs must be a mapping {{input name: array}}, not {type(inputs).__name__}")
    if name_map is None:
        return {k: np.asarray(v) for k, v in inputs.items()}
    names = name_map["inputs"]
    unknown = [k for k in inputs if k not in names]
    if unknown:
        raise InputError(unknown[0], f"not an input of the model; it takes {list(names)}")
    missing = [k for k in names if k not in inputs]
    if missing:
        raise InputError(missing[0], f"missing; the model takes {list(names)}")
    scalars = set(name_map.get("scalar_inputs", ()))  # CoreML has no rank-0 inputs: fed as (1,)
    return {names[k]: np.reshape(v, (1,)) if k in scalars else np.asarray(v) for k, v in inputs.items()}


# The array dtype kinds each program input dtype accepts (64-bit values are narrowed, in range).
# CoreML has no bool inputs: coremltools turns an ONNX bool input into an fp32 one, fed 0/1.
_ACCEPTED_KINDS = {"f": "fb", "i": "iu", "u": "iu", "b": "b"}


def check_input_dtypes(prog: Program, mil_inputs: Mapping[str, np.ndarray], name_map: Optional[dict]) -> None:
    """A float input takes float (or bool) arrays, an integer input integer arrays: anything else
    (complex, int for float, float for int…) is an InputError, never a silent cast."""
    onnx_names = {mil: onnx for onnx, mil in (name_map or {}).get("inputs", {}).items()}
    for mil_name, var in prog.functions["main"].inputs.items():
        if mil_name not in mil_inputs:
            continue
        expected = np.dtype(types.nptype_from_builtin(var.dtype))
        got = np.asarray(mil_inputs[mil_name]).dtype
        if got.kind not in _ACCEPTED_KINDS.get(expected.kind, expected.kind):
            raise InputError(onnx_names.get(mil_name, mil_name),
                             f"got a {got} array; the model takes {expected} values")


def to_onnx_outputs(outputs: Mapping[str, np.ndarray], name_map: Optional[dict]) -> dict:
    """MIL-named function outputs -> ONNX-named (identity without a name map)."""
    if name_map is None:
        return dict(outputs)
    return {onnx: outputs[mil] for onnx, mil in name_map["outputs"].items()}


def predict(model: Union[ct.models.MLModel, str, Path, Program], inputs: Mapping[str, np.ndarray], *,
            runtime: str = "mil", compute_units=None, capture: bool = False, observe=None) -> dict:
    """Run ``model`` (MLModel, .mlpackage path or pymil Program) on ``inputs`` (ONNX names).

    ``runtime="mil"``: the numpy MIL interpreter on the program as saved (after coremltools'
    passes); fp16 programs hold fp16 values, so fp16 rounding and overflow show as on device.
    ``runtime="mil-ane"``: the interpreter **emulating** the Neural Engine (fp16 compute whatever the
    declared precision, the rank-3 conv_transpose bias hazard; see ``ane_emulation``).
    ``runtime="coreml"``: CoreML itself (macOS only; see ``coreml_runtime``), at ``compute_units``
    (a ct.ComputeUnit or its name; the interpreter ignores it).

    Returns ``{onnx output name: array}``. With ``capture=True`` (interpreter only) returns
    ``{"outputs": {onnx output name: array}, "tensors": {MIL var name: array}}`` where "tensors"
    holds every var of the program: the function inputs, consts and every op's outputs (nested
    blocks included). Map ONNX tensors to MIL vars with the name map's "tensors" entry
    (``pipeline.read_name_map``); a var inside a loop body holds its last iteration.
    ``observe`` (interpreter only): ``{MIL var name: callback}``, see ``interpreter.run_program``.
    """
    if runtime not in RUNTIMES:
        raise OptionError("runtime", f"must be one of {RUNTIMES}, not {runtime!r}")
    if runtime == "coreml":
        from . import coreml as coreml_runtime
        if capture or observe:
            raise OptionError("capture", "capture=True needs runtime='mil' (observe too): CoreML exposes only the "
                              "model's outputs "
                             "(bisect by truncation with build_coreml(..., outputs=[tensor]) instead)")
        if isinstance(model, Program):
            raise OptionError("runtime", "runtime='coreml' needs an MLModel or a .mlpackage path, not a bare Program")
        mlmodel = pipeline.open_model(model)
        name_map = _name_map(mlmodel)
        mil_inputs = to_mil_inputs(inputs, name_map)
        check_input_shapes(inputs, declared_shapes(mlmodel), name_map)
        outputs = coreml_runtime.predict(model, mil_inputs, compute_units=compute_units)
        return to_onnx_outputs(outputs, name_map)
    if runtime == "mil" and not capture and not observe and type(inputs) is dict:
        fast = _FAST.get(model, _NO_FAST) if isinstance(model, (Program, ct.models.MLModel)) else _NO_FAST
        if fast is _NO_FAST:
            prog, name_map, declared = _load(model)
            fast = _fast_runner(prog, name_map, declared)
            if isinstance(model, (Program, ct.models.MLModel)):
                _FAST[model] = fast
        if fast is not None:
            outputs = fast(inputs)
            if outputs is not None:
                return outputs
    prog, name_map, declared = _load(model)
    inputs = pixel_arrays(inputs)
    mil_inputs = to_mil_inputs(inputs, name_map)
    check_input_shapes(inputs, declared, name_map)
    check_input_dtypes(prog, mil_inputs, name_map)
    if runtime == "mil-ane":
        from . import ane_emulation

        observe = ane_emulation.combine(ane_emulation.observers(prog), observe)
    values = run_program(prog, mil_inputs, capture=capture, observe=observe)
    if not capture:
        return to_onnx_outputs(values, name_map)
    function_outputs = {v.name: values[v.name] for v in prog.functions["main"].outputs}
    return {"outputs": to_onnx_outputs(function_outputs, name_map), "tensors": values}


def pixel_arrays(inputs):
    """PIL images (ImageType inputs) as float32 NCHW pixel arrays, as CoreML reads a pixel buffer."""
    if not isinstance(inputs, Mapping):
        return inputs
    out = {}
    for name, value in inputs.items():
        if hasattr(value, "getbands") and hasattr(value, "size"):  # a PIL image
            array = np.asarray(value, dtype=np.float32)
            array = array[:, :, None] if array.ndim == 2 else array
            value = array.transpose(2, 0, 1)[None]
        out[name] = value
    return out


def program(model: Union[ct.models.MLModel, str, Path, Program]) -> Program:
    """The program ``predict`` runs for ``model`` (as saved, cached like predict's)."""
    return _load(model)[0]
