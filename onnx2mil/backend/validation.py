"""Layer-by-layer validation of a CoreML ML Program against onnxruntime.

The reference runs once with every node output exposed as a graph output. The CoreML side is
observed by one of three methods, named in the report:
- ``capture``: the MIL interpreter records every var in one run (runtime "mil" only);
- ``outputs``: the model is rebuilt with every ONNX tensor as an output (any runtime). On CoreML
  this changes how the model is partitioned between CPU, GPU and ANE, so it can hide an ANE bug;
- ``truncation``: the model is rebuilt cut at one tensor at a time (``build_coreml(outputs=[t])``)
  and the first divergence is bisected over the topological order.
ONNX tensors map to MIL vars through the name map stored in the model's metadata.
"""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Optional, Union

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper

from ..errors import InvalidModelError, Onnx2MilError, RuntimeUnavailableError
from . import hazards, pipeline as pipeline_mod
from .compare import compare, input_rounding_allowance
from .config import Config
from .loader import read_model, topological_order
from .report import COMPARED, FAIL, FOLDED, FUSED, LOSSY, MISSING, PASS, Divergence, LayerResult, ValidationReport

from .runtimes import RUNTIMES, pixel_arrays  # RUNTIMES: "mil", "mil-ane" (an emulation), "coreml"
INTERPRETERS = ("mil", "mil-ane")
_PENDING = "pending"  # a row with a MIL var, until the run fills in its metrics
METHODS = ("capture", "outputs", "truncation")


class ValidationInputError(Onnx2MilError, ValueError):
    """Inputs, node names or options given to validate/isolate that cannot be used, and why."""


# ---- inputs ----------------------------------------------------------------------------------------

def _input_specs(model: onnx.ModelProto) -> dict[str, tuple[tuple, np.dtype]]:
    """Graph inputs that are not initializers: {name: (dims with str/None for symbolic, dtype)}."""
    inits = {t.name for t in model.graph.initializer}
    specs = {}
    for vi in model.graph.input:
        if vi.name in inits:
            continue
        tt = vi.type.tensor_type
        dims = tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in tt.shape.dim)
        specs[vi.name] = (dims, np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tt.elem_type)))
    return specs


def random_input(shape: tuple, dtype: np.dtype, rng: np.random.Generator) -> np.ndarray:
    """Realistic values per dtype: floats in [-1, 1], signed ints in [0, 8), bools, full-range bytes."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return rng.uniform(-1.0, 1.0, size=shape).astype(dtype)
    if dtype.kind == "b":
        return rng.integers(0, 2, size=shape).astype(bool)
    if dtype.kind in "iu":
        high = 256 if dtype.itemsize == 1 else 8
        return rng.integers(0, high, size=shape).astype(dtype)
    raise ValidationInputError(f"cannot generate inputs of dtype {dtype}; pass inputs= explicitly")


def make_inputs(model: onnx.ModelProto, inputs: Union[None, str, Path, Mapping] = None,
                seed: int = 0) -> dict[str, np.ndarray]:
    """The model's inputs: given values (dict of arrays or .npz), shapes to fill (a tuple:
    ``{name: (1, 80, 20)}``), or generated from the model's static shapes with a seeded generator."""
    specs = _input_specs(model)
    given: dict = {}
    if isinstance(inputs, (str, Path)):
        path = Path(inputs)
        if not path.is_file():
            raise ValidationInputError(f"{path}: no such inputs file (.npz expected)")
        with np.load(path) as data:
            given = {k: data[k] for k in data.files}
    elif inputs is not None:
        given = dict(inputs)
    unknown = sorted(set(given) - set(specs))
    if unknown:
        raise ValidationInputError(f"inputs {unknown} are not inputs of the model (it takes {list(specs)})")
    rng = np.random.default_rng(seed)
    out = {}
    for name, (dims, dtype) in specs.items():
        value = given.get(name)
        is_shape = isinstance(value, tuple) and all(isinstance(d, (int, np.integer)) for d in value)
        if value is not None and not is_shape:
            arr = np.asarray(value)
            if arr.dtype != dtype:
                arr = arr.astype(dtype)
            _check_shape(name, arr.shape, dims)
            out[name] = arr
            continue
        if value is not None:
            shape = tuple(int(d) for d in value)
            _check_shape(name, shape, dims)
        else:
            symbolic = [d for d in dims if not isinstance(d, int) or d <= 0]
            if symbolic:
                raise ValidationInputError(
                    f"input '{name}' has symbolic dims {symbolic} (shape {dims}); pass inputs="
                    f"{{'{name}': array or shape}} (CLI: --inputs x.npz)")
            shape = dims
        out[name] = random_input(shape, dtype, rng)
    return out


def _check_shape(name: str, shape: tuple, dims: tuple) -> None:
    ok = len(shape) == len(dims) and all(not isinstance(d, int) or d <= 0 or d == s for s, d in zip(shape, dims))
    if not ok:
        raise ValidationInputError(f"input '{name}' has shape {tuple(shape)}, the model takes {dims}")


def with_static_inputs(model: onnx.ModelProto, shapes: Mapping[str, tuple]) -> onnx.ModelProto:
    """A copy whose graph inputs have the given static dims (validation runs on concrete inputs,
    and builders that need static dims then see them)."""
    specs = _input_specs(model)
    if all(all(isinstance(d, int) and d > 0 for d in specs[k][0]) for k in shapes if k in specs):
        return model
    out = onnx.ModelProto()
    out.CopyFrom(model)
    for vi in out.graph.input:
        if vi.name in shapes:
            dims = vi.type.tensor_type.shape.dim
            for d, size in zip(dims, shapes[vi.name]):
                d.Clear()
                d.dim_value = int(size)
    return out


def mil_feeds(feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """MIL has no 64-bit tensors: int64 -> int32, float64 -> fp32."""
    out = {}
    for k, v in feeds.items():
        v = np.asarray(v)
        if v.dtype in (np.int64, np.uint64):
            v = v.astype(np.int32)
        elif v.dtype == np.float64:
            v = v.astype(np.float32)
        out[k] = v
    return out


# ---- reference -----------------------------------------------------------------------------------

@dataclass
class OnnxNodeInfo:
    name: str
    op_type: str
    inputs: list
    outputs: list
    proto: Optional[onnx.NodeProto] = None


def topological_nodes(model: onnx.ModelProto) -> list[OnnxNodeInfo]:
    """Top-level nodes in the loader's topological order, unnamed nodes named as the build names them."""
    graph = model.graph
    known = {i.name for i in graph.input} | {t.name for t in graph.initializer}
    try:
        order = topological_order(graph, known)
    except InvalidModelError as e:
        raise ValidationInputError(f"the ONNX graph has a cycle or dangling inputs ({e})") from e
    return [OnnxNodeInfo(n.name or f"{n.op_type}_{index}", n.op_type, list(n.input), [o for o in n.output if o], n)
            for index, n in enumerate(order)]


def run_reference(model: onnx.ModelProto, feeds: Mapping[str, np.ndarray],
                  tensors: Optional[set] = None) -> dict[str, np.ndarray]:
    """Node outputs of ``model`` from ONE onnxruntime session run: every one, or those in
    ``tensors`` (plus the graph's outputs).

    They are appended to the graph's outputs without types (onnxruntime types them itself, so no
    shape inference over the weights is needed) and removed again afterwards: ``model`` is not
    copied, since a large model's weights would be. onnxruntime's memory arena is off: it would
    keep a second copy of every exposed tensor after the run (300 MB on the 115M BigVGAN).
    """
    graph = model.graph
    present = {o.name for o in graph.output}
    kept = len(graph.output)
    for node in graph.node:
        for name in node.output:
            if name and name not in present and (tensors is None or name in tensors):
                graph.output.append(onnx.ValueInfoProto(name=name))
                present.add(name)
    try:
        serialized = model.SerializeToString()
    finally:
        del graph.output[kept:]
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.enable_cpu_mem_arena = False
    try:
        session = ort.InferenceSession(serialized, options, providers=["CPUExecutionProvider"])
        del serialized
        names = [o.name for o in session.get_outputs()]
        return dict(zip(names, session.run(names, dict(feeds))))
    except (ort.capi.onnxruntime_pybind11_state.Fail, ort.capi.onnxruntime_pybind11_state.InvalidArgument,
            ort.capi.onnxruntime_pybind11_state.InvalidGraph) as e:
        raise ValidationInputError(f"onnxruntime cannot run the reference model: {e}") from e


# ---- first divergence ----------------------------------------------------------------------------

def first_divergence(layers: list[LayerResult], nodes: list[OnnxNodeInfo]) -> Optional[Divergence]:
    """The earliest failing node (topological order) whose inputs all pass.

    An input without a compared value (fused, folded, missing) is looked through to its nearest
    compared ancestors; graph inputs and constants count as passing. The nodes looked through are
    listed on the result: the fault may lie in any of them.
    """
    by_tensor = {layer.tensor: layer for layer in layers}
    producer = {o: n for n in nodes for o in n.outputs}
    memo: dict[str, tuple[frozenset, frozenset]] = {}

    def compared_ancestors(tensor: str) -> tuple[frozenset, frozenset]:
        """(compared tensors standing for ``tensor``, nodes looked through to reach them)."""
        if tensor in memo:
            return memo[tensor]
        layer = by_tensor.get(tensor)
        node = producer.get(tensor)
        if layer is not None and layer.status in COMPARED:
            result = (frozenset([tensor]), frozenset())
        elif node is None or node.op_type == "Constant" or (layer is not None and layer.status == FOLDED):
            result = (frozenset(), frozenset())
        else:
            found, through = set(), {node.name}
            for i in node.inputs:
                if i:
                    f, t = compared_ancestors(i)
                    found |= f
                    through |= t
            result = (frozenset(found), frozenset(through))
        memo[tensor] = result
        return result

    for layer in layers:
        if layer.status != FAIL:
            continue
        node = producer[layer.tensor]
        found, through = set(), set()
        for i in node.inputs:
            if i:
                f, t = compared_ancestors(i)
                found |= f
                through |= t
        if all(by_tensor[t].status in (PASS, LOSSY) for t in found):
            order = [n.name for n in nodes if n.name in through]
            return Divergence(node.name, node.op_type, layer.tensor, layer, order)
    return None


# ---- the CoreML side -----------------------------------------------------------------------------

def check_runtime(runtime: str) -> None:
    if runtime not in RUNTIMES:
        raise ValidationInputError(f"runtime must be one of {', '.join(RUNTIMES)}, not {runtime!r}")
    if runtime == "coreml" and sys.platform != "darwin":
        raise RuntimeUnavailableError(
            f"CoreML runs on macOS only (this is {sys.platform}); use runtime='mil' (the interpreter)")


def run_coreml_side(mlmodel, feeds: Mapping[str, np.ndarray], *, runtime: str, compute_units=None,
                    capture: bool = False, observe=None) -> tuple[dict, dict]:
    """(outputs keyed by ONNX names, captured vars keyed by MIL var names or {})."""
    from .runtimes import predict

    result = predict(mlmodel, mil_feeds(feeds), runtime=runtime, compute_units=compute_units, capture=capture,
                     observe=observe)
    if capture:
        return dict(result["outputs"]), dict(result["tensors"])
    return dict(result), {}


def stored_config(mlmodel) -> Optional[dict]:
    meta = mlmodel.user_defined_metadata
    return json.loads(meta[pipeline_mod.META_CONFIG]) if pipeline_mod.META_CONFIG in meta else None


def _node_rows(nodes: list[OnnxNodeInfo], reference: Mapping, name_map: Mapping) -> list[LayerResult]:
    """One row per node output in topological order, statuses for what cannot be compared."""
    folded = set(name_map.get("folded", []))
    tensors = name_map.get("tensors", {})
    unobservable = name_map.get("unobservable", {})
    rows = []
    for node in nodes:
        if node.op_type == "Constant":  # a value, not a layer
            continue
        for tensor in node.outputs:
            ref = reference.get(tensor)
            row = LayerResult(index=len(rows), node=node.name, op_type=node.op_type, tensor=tensor,
                              shape=list(ref.shape) if ref is not None else None, status=MISSING,
                              dtype=str(ref.dtype) if ref is not None else None)
            if tensor in folded:
                row.status, row.reason = FOLDED, "folded to a constant at build time"
            elif ref is None:
                row.reason = "onnxruntime gave no value (shape inference could not type it)"
            elif tensor not in tensors:
                row.reason = "not in the model's name map (was it built from another ONNX model?)"
            elif tensors[tensor] is None:
                row.status = FUSED
                row.reason = unobservable.get(tensor, "fused away by the passes: no var holds it")
            else:
                row.mil_var, row.status = tensors[tensor], _PENDING
            rows.append(row)
    return rows


def _holds(row: LayerResult, value: np.ndarray, reference: np.ndarray) -> bool:
    """Whether ``value`` can be the tensor at all: same shape and dtype kind. A var the passes
    left in another layout (``reduce_transposes``) or type is not observable, not a failure."""
    value, reference = np.asarray(value), np.asarray(reference)
    kind = {"f": "float", "i": "int", "u": "int", "b": "bool"}
    if value.shape == reference.shape and kind.get(value.dtype.kind) == kind.get(reference.dtype.kind):
        return True
    row.status = FUSED
    row.reason = (f"var '{row.mil_var}' holds {value.dtype} {list(value.shape)}, not the tensor's "
                  f"{reference.dtype} {list(reference.shape)}: the passes changed its layout or type")
    return False


def _fill(row: LayerResult, value: Optional[np.ndarray], reference: np.ndarray, tolerance: Mapping,
          precision: str) -> None:
    """Accumulated metrics (the program run end to end) and, without a local check, the status."""
    if value is None:
        row.status, row.reason = MISSING, f"MIL var '{row.mil_var}' has no value in the run"
        return
    if not _holds(row, value, reference):
        return
    result = compare(reference, value, tolerance, precision=precision)
    row.status, row.reason = result.pop("status"), result.pop("reason")
    row.drift = row.status == FAIL
    _set_metrics(row, result)


def _set_metrics(row: LayerResult, result: Mapping) -> None:
    for key in ("max_abs_err", "max_abs_ref", "rel_to_max", "cosine", "snr_db"):
        setattr(row, key, result[key])
    row.underflow = bool(result.get("underflow"))


def _compare_capture(mlmodel, feeds, rows: list[LayerResult], reference: Mapping, tolerance: Mapping,
                     allowance, precision: str, runtime: str) -> None:
    """Two interpreter runs, compared as each var is produced and then freed.

    Accumulated: the program end to end, every held var against onnxruntime. Local: the same
    program with every held var replaced by onnxruntime's value as soon as it is computed, so each
    op runs on reference inputs and its error is its own (MNN's per-op check). The row's status
    is the local verdict; ``drift`` says whether the accumulated error exceeds the tolerance.
    """
    pending = {row.mil_var: row for row in rows if row.status == _PENDING}

    def accumulated(name, value):
        row = pending[name]
        if _holds(row, value, reference[row.tensor]):
            result = compare(reference[row.tensor], value, tolerance, precision=precision)
            row.drift = result["status"] == FAIL
            _set_metrics(row, result)
        return None

    outputs, _ = run_coreml_side(mlmodel, feeds, runtime=runtime, observe={n: accumulated for n in pending})

    def local(name, value):
        row = pending[name]
        if row.status != _PENDING:  # not held (shape/dtype): leave the program's own value
            return None
        ref = reference[row.tensor]
        result = compare(ref, value, tolerance, allowance=allowance(row), precision=precision)
        row.status, row.reason = result["status"], result["reason"]
        row.local_max_abs_err, row.local_rel_to_max = result["max_abs_err"], result["rel_to_max"]
        row.local_cosine, row.allowed_abs_err = result["cosine"], result["allowed_abs_err"]
        row.underflow = row.underflow or bool(result.get("underflow"))
        return ref

    run_coreml_side(mlmodel, feeds, runtime=runtime, observe={n: local for n in pending})
    for row in pending.values():
        if row.status == _PENDING:
            row.status, row.reason = MISSING, f"MIL var '{row.mil_var}' has no value in the run"
    return outputs


# ---- validate ------------------------------------------------------------------------------------

def validate(
    onnx_model,
    mlmodel=None,
    *,
    inputs=None,
    runtime: str = "mil",
    compute_units=None,
    config=None,
    compute_precision=None,
    minimum_deployment_target=None,
    method: Optional[str] = None,
    source=None,
    seed: int = 0,
    progress: Optional[Callable[[str], None]] = None,
    compression_report: bool = False,
) -> ValidationReport:
    """Compare every tensor of ``mlmodel`` with onnxruntime running ``onnx_model``.

    ``onnx_model``: the reference (path or ModelProto). ``mlmodel``: MLModel or .mlpackage path;
    None builds one from ``source`` (default ``onnx_model``) with ``config``, ``compute_precision``
    and ``minimum_deployment_target``. ``inputs``: dict of arrays or shapes, or an .npz path;
    missing ones are generated (seeded). ``method``: "capture" (default for runtime "mil"),
    "outputs" (default for "coreml") or "truncation"; the latter two rebuild from ``source`` with
    the model's config and precision. Tolerances: ``config``'s, else the model's stored config's,
    for the model's precision. ``progress``: called with a short message before each long step.
    Compressed weights (constexpr ops): an op beyond tolerance that reads them is ``lossy``, not a
    divergence; ``compression_report=True`` also validates an uncompressed build of ``source``
    and ranks the compressed layers by the local error compression adds (``report.compression``),
    and a layer that fails uncompressed too stays a failure.
    Raises ValidationInputError (bad inputs/options), RuntimeUnavailableError (CoreML off macOS).
    """
    from .build import build_coreml, precision_of

    check_runtime(runtime)
    method = method or ("capture" if runtime in INTERPRETERS else "outputs")
    if method not in METHODS:
        raise ValidationInputError(f"method must be one of {', '.join(METHODS)}, not {method!r}")
    if method == "capture" and runtime not in INTERPRETERS:
        raise ValidationInputError("method 'capture' needs the MIL interpreter (runtime='mil'); "
                                   "use 'outputs' or 'truncation' with CoreML")
    say = progress or (lambda _msg: None)
    reference_model = read_model(onnx_model)
    inputs = pixel_arrays(inputs)  # PIL images for ImageType inputs
    feeds = make_inputs(reference_model, inputs, seed)
    shapes = {k: v.shape for k, v in feeds.items()}
    source_model = with_static_inputs(read_model(source) if source is not None else reference_model, shapes)

    if mlmodel is None:
        say("building the CoreML model")
        mlmodel = build_coreml(source_model, inputs=shapes, compute_precision=compute_precision, config=config,
                              minimum_deployment_target=minimum_deployment_target)
    else:
        mlmodel = pipeline_mod.open_model(mlmodel)
    name_map = pipeline_mod.read_name_map(mlmodel)
    precision = name_map.get("precision", "fp16")
    if compute_precision is not None:
        asked = "fp32" if precision_of(compute_precision) == precision_of("fp32") else "fp16"
        if asked != precision:
            raise ValidationInputError(f"compute_precision={compute_precision!r} but the given model is {precision}")
    cfg = Config.load(config if config is not None else stored_config(mlmodel))
    tolerance = cfg.tolerance(precision)

    # ImageType inputs take pixels; onnxruntime (and any rebuilt, tensor-input model) takes them
    # after the model's own preprocessing
    feeds, onnx_feeds = _image_feeds(feeds, name_map.get("image_inputs", {}), inputs, seed)
    say("running onnxruntime (every node output)")
    folded = set(name_map.get("folded", []))  # constants at build time: not compared
    nodes = topological_nodes(reference_model)
    magnitudes = _initializer_magnitudes(reference_model, nodes, cfg)
    reference = run_reference(reference_model, onnx_feeds, {o for n in nodes for o in n.outputs} - folded)
    rows = _node_rows(nodes, reference, name_map)
    units = None if compute_units is None else getattr(compute_units, "name", str(compute_units))
    report = ValidationReport(model=_model_label(onnx_model, reference_model), runtime=runtime, method=method,
                              precision=precision, tolerances=dict(tolerance), layers=rows, compute_units=units,
                              outputs=[o.name for o in reference_model.graph.output])
    if runtime == "mil-ane":
        report.notes.append("runtime mil-ane is an EMULATION of the Neural Engine on the interpreter (fp16 "
                            "compute and the documented hazards), not the Neural Engine")
    report.notes.extend(f"hazard avoided: {rewrite}" for rewrite in hazards.applied(mlmodel))

    def rebuild(outputs: Optional[list] = None, target=minimum_deployment_target):
        return build_coreml(source_model, inputs=shapes, outputs=outputs, compute_precision=precision,
                            config=cfg.data, minimum_deployment_target=target)

    if method == "capture":
        say(f"running the MIL program ({runtime}) end to end and op by op on the reference's values")
        allowance = _allowance(reference, onnx_feeds, magnitudes, nodes, precision, cfg)
        _compare_capture(mlmodel, feeds, rows, reference, tolerance, allowance, precision, runtime)
        compressed = _mark_compressed(rows, mlmodel)
        if compressed and compression_report:
            say("validating an uncompressed build for the compression report")
            uncompressed = rebuild(target=minimum_deployment_target or _target_of(mlmodel))
            baseline = validate(reference_model, uncompressed, inputs=onnx_feeds, config=cfg.data)
            report.compression = _rank_compression(rows, baseline, compressed)
    elif method == "outputs":
        _compare_outputs(rows, reference, onnx_feeds, tolerance, precision, rebuild, runtime, compute_units, say,
                         report)
    else:
        worst = _bisect(rows, nodes, reference, onnx_feeds, tolerance, rebuild, runtime, compute_units, say, report,
                        precision)
        if worst is not None:
            node = next(n for n in nodes if worst in n.outputs)
            report.first_divergence = Divergence(node.name, node.op_type, worst, report.layer(worst))
        return report
    report.first_divergence = first_divergence(rows, nodes)
    return report


def _compare_outputs(rows, reference, feeds, tolerance, precision, rebuild, runtime, compute_units, say,
                     report) -> None:
    """Method "outputs": one rebuild with every tensor as a model output, accumulated error only."""
    wanted = [r.tensor for r in rows if r.status in (_PENDING, FUSED)]
    say(f"rebuilding with {len(wanted)} tensors as outputs and running {runtime}")
    exposed = rebuild(wanted)
    outputs, _ = run_coreml_side(exposed, feeds, runtime=runtime, compute_units=compute_units)
    output_vars = pipeline_mod.read_name_map(exposed)["outputs"]
    for row in rows:
        if row.tensor in wanted:
            row.mil_var = output_vars.get(row.tensor)
            _fill(row, outputs.get(row.tensor), reference[row.tensor], tolerance, precision)
    report.notes.append("every ONNX tensor was exposed as a model output: on CoreML this changes the "
                        "CPU/GPU/ANE partitioning and can hide a device bug; confirm with method 'truncation'")
    report.notes.append("statuses judge the accumulated error: the local error of each op needs method 'capture'")


def _bisect(rows, nodes, reference, feeds, tolerance, rebuild, runtime, compute_units, say,
            report, precision) -> Optional[str]:
    """Truncation bisection: build the model cut at one tensor, run it, compare. The candidates
    narrow to the ancestors of the latest failing tensor that no passing probe already clears
    (a passing probe clears its ancestors). Returns the first failing tensor, or None."""
    candidates = [r for r in rows if r.status in (_PENDING, FUSED)]
    for r in candidates:  # only probed (or cleared) tensors get a status
        r.status, r.reason, r.mil_var = MISSING, "not probed by the bisection", None
    producer = {o: n for n in nodes for o in n.outputs}
    consumed = {i for n in nodes for i in n.inputs if i}
    by_tensor = {r.tensor: r for r in rows}
    memo: dict[str, frozenset] = {}

    def ancestors(tensor: str) -> frozenset:
        if tensor not in memo:
            found = set()
            for i in producer[tensor].inputs:
                if i in producer:
                    found.add(i)
                    found |= ancestors(i)
            memo[tensor] = frozenset(found)
        return memo[tensor]

    def probe(tensors: list[str]) -> None:
        say(f"probe: model cut at {', '.join(tensors)}")
        cut = rebuild(tensors)
        outputs, _ = run_coreml_side(cut, feeds, runtime=runtime, compute_units=compute_units)
        output_vars = pipeline_mod.read_name_map(cut)["outputs"]
        for t in tensors:
            row = by_tensor[t]
            row.mil_var = output_vars.get(t)
            _fill(row, outputs.get(t), reference[t], tolerance, precision)

    ends = [r.tensor for r in candidates if r.tensor not in consumed]
    probe(ends)
    probes, worst = 1, next((t for t in ends if by_tensor[t].status == FAIL), None)
    cleared: set[str] = set()
    if worst is not None:
        pool = [r.tensor for r in candidates if r.tensor in ancestors(worst)]
        while pool:
            mid = _best_split(pool, ancestors)
            probe([mid])
            probes += 1
            if by_tensor[mid].status == FAIL:
                worst = mid
                pool = [t for t in pool if t in ancestors(mid)]
            else:
                cleared |= ancestors(mid)
                pool = [t for t in pool if t not in cleared and t != mid]
    for t in cleared & set(by_tensor):
        if by_tensor[t].status == MISSING:
            by_tensor[t].status, by_tensor[t].reason = PASS, "cleared by a passing probe downstream"
    report.notes.append(f"truncation bisection: {probes} cut model(s) built and run; a tensor upstream of a "
                        "passing probe counts as passing (a cut model that matches implies its inputs did)")
    return worst


def _best_split(pool: list[str], ancestors: Callable[[str], frozenset], samples: int = 64) -> str:
    """The probe that best halves ``pool`` whatever its outcome (as git bisect picks a commit):
    a failing probe keeps its ancestors, a passing one drops them and itself. Among up to
    ``samples`` evenly spaced candidates, so a large graph costs O(samples x pool)."""
    members = set(pool)
    step = max(1, len(pool) // samples)

    def worst_case(t: str) -> int:
        kept_if_fail = len(ancestors(t) & members)
        return max(kept_if_fail, len(pool) - kept_if_fail - 1)

    return min(pool[::step], key=worst_case)


def _max_abs(value) -> float:
    value = np.asarray(value)
    if value.dtype.kind != "f" or not value.size:
        return 0.0
    finite = np.abs(value.astype(np.float32, copy=False))
    return float(finite[np.isfinite(finite)].max(initial=0.0))


def _initializer_magnitudes(model: onnx.ModelProto, nodes: list[OnnxNodeInfo], cfg: Config) -> dict[str, float]:
    """max|value| of the initializers read by ops with an input-rounding allowance."""
    rounding = cfg.data["input_rounding"]
    sensitive = set(rounding["absolute"]) | set(rounding["relative"])
    wanted = {i for n in nodes if n.op_type in sensitive for i in n.inputs if i}
    return {t.name: _max_abs(numpy_helper.to_array(t)) for t in model.graph.initializer if t.name in wanted}


def preprocess_image(pixels: np.ndarray, preprocessing: Mapping) -> np.ndarray:
    """What an ImageType input does to its pixels: scale x pixel + per-channel bias (NCHW)."""
    pixels = np.asarray(pixels, dtype=np.float32)
    bias = np.asarray(preprocessing["bias"], dtype=np.float32).reshape(1, -1, 1, 1)
    return (np.float32(preprocessing["scale"]) * pixels + bias).astype(np.float32)


def _image_feeds(feeds: dict, images: Mapping, given, seed: int) -> tuple[dict, dict]:
    """(feeds for the model as built, feeds for onnxruntime). An image input the caller did not
    give is generated as pixels in [0, 255]."""
    if not images:
        return feeds, feeds
    supplied = set(given) if isinstance(given, Mapping) else set()
    rng = np.random.default_rng(seed)
    feeds = dict(feeds)
    for name in images:
        if name not in supplied:
            feeds[name] = rng.integers(0, 256, size=feeds[name].shape).astype(np.float32)
    onnx_feeds = {k: preprocess_image(v, images[k]) if k in images else v for k, v in feeds.items()}
    return feeds, onnx_feeds


def _allowance(reference: Mapping, feeds: Mapping, magnitudes: Mapping[str, float], nodes: list[OnnxNodeInfo],
               precision: str, cfg: Config) -> Callable[[LayerResult], float]:
    """Per row, the input-rounding allowance of its op (see ``compare``), from the largest
    magnitude among the node's float inputs (reference values, graph inputs or initializers)."""
    rounding = cfg.data["input_rounding"]
    sensitive = set(rounding["absolute"]) | set(rounding["relative"])
    node_of = {n.name: n for n in nodes}

    def magnitude(name: str) -> float:
        if name in magnitudes:
            return magnitudes[name]
        value = reference.get(name)
        return _max_abs(value if value is not None else feeds.get(name, ()))

    def allowance(row: LayerResult) -> float:
        if row.op_type not in sensitive:
            return 0.0
        largest = max((magnitude(i) for i in node_of[row.node].inputs if i), default=0.0)
        return input_rounding_allowance(row.op_type, precision, largest, _max_abs(reference[row.tensor]), rounding)

    return allowance


def _mark_compressed(rows: list[LayerResult], mlmodel) -> dict:
    """Rows whose op reads a compressed weight: named, and ``lossy`` rather than failing."""
    from .compress import compressed_weights
    from .runtimes import program

    compressed = compressed_weights(program(mlmodel), {row.mil_var for row in rows if row.mil_var})
    for row in rows:
        if row.mil_var in compressed:
            row.compressed = compressed[row.mil_var][1]
            if row.status == FAIL:
                row.status = LOSSY
                row.reason = f"reads weights compressed by {row.compressed}: compression's error ({row.reason})"
    return compressed


def _rank_compression(rows: list[LayerResult], baseline: ValidationReport, compressed: Mapping) -> list[dict]:
    """The compressed layers by the local error compression adds, largest first (ties in
    topological order); a lossy layer that fails uncompressed too is a failure again."""
    entries = []
    for row in rows:
        if not row.compressed or row.local_rel_to_max is None:
            continue
        base = next((layer for layer in baseline.layers if layer.tensor == row.tensor), None)
        row.uncompressed_local_rel_to_max = base.local_rel_to_max if base is not None else None
        if row.status == LOSSY and base is not None and base.status == FAIL:
            row.status, row.reason = FAIL, f"fails without compression too: {base.reason}"
        added = row.local_rel_to_max - (row.uncompressed_local_rel_to_max or 0.0)
        entries.append({"node": row.node, "op_type": row.op_type, "tensor": row.tensor, "index": row.index,
                        "mil_op": compressed[row.mil_var][0], "compressed": row.compressed,
                        "local_rel_to_max": row.local_rel_to_max,
                        "uncompressed_local_rel_to_max": row.uncompressed_local_rel_to_max, "added": added})
    return sorted(entries, key=lambda e: (-e["added"], e["index"]))


def _target_of(mlmodel):
    import coremltools as ct

    return ct.target(mlmodel.get_spec().specificationVersion)


def _model_label(given, proto: onnx.ModelProto) -> str:
    if isinstance(given, (str, Path)):
        return Path(given).name
    return proto.graph.name or "model"
