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
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Optional

import coremltools as ct
import numpy as np
import onnx
from onnx import numpy_helper

from ...errors import RuntimeUnavailableError, ValidationInputError
from ..convert import hazards, pipeline as pipeline_mod
from ..convert.build import build_coreml, precision_of
from ..convert.config import Config
from ..convert.loader import read_model
from ..runtime import coreml
from ..runtime.predict import ANE_EMULATION, RUNTIMES, pixel_arrays, predict, program
from .bisect import bisect
from .compare import compare, input_rounding_allowance
from .compress import compressed_weights
from .reference import (OnnxNodeInfo, image_feeds, make_inputs, mil_feeds, run_reference, topological_nodes,
                        with_static_inputs)
from .report import COMPARED, FAIL, FOLDED, FUSED, LOSSY, MISSING, PASS, Divergence, LayerResult, ValidationReport

INTERPRETERS = ("mil", ANE_EMULATION)
_PENDING = "pending"  # a row with a MIL var, until the run fills in its metrics
METHODS = ("capture", "outputs", "truncation")


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
    if runtime == "coreml" and coreml.available():
        raise RuntimeUnavailableError(coreml.available())


def run_coreml_side(mlmodel, feeds: Mapping[str, np.ndarray], *, runtime: str, compute_units=None,
                    capture: bool = False, observe=None) -> tuple[dict, dict]:
    """(outputs keyed by ONNX names, captured vars keyed by MIL var names or {})."""
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
    method = _check_options(runtime, method)
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
    precision = _precision(name_map, compute_precision)
    cfg = Config.load(config if config is not None else stored_config(mlmodel))

    # ImageType inputs take pixels; onnxruntime (and any rebuilt, tensor-input model) takes them
    # after the model's own preprocessing
    feeds, onnx_feeds = image_feeds(feeds, name_map.get("image_inputs", {}), inputs, seed)
    say("running onnxruntime (every node output)")
    folded = set(name_map.get("folded", []))  # constants at build time: not compared
    nodes = topological_nodes(reference_model)
    reference = run_reference(reference_model, onnx_feeds, {o for n in nodes for o in n.outputs} - folded)
    rows = _node_rows(nodes, reference, name_map)
    units = None if compute_units is None else getattr(compute_units, "name", str(compute_units))
    report = ValidationReport(model=_model_label(onnx_model, reference_model), runtime=runtime, method=method,
                              precision=precision, tolerances=dict(cfg.tolerance(precision)), layers=rows,
                              compute_units=units, outputs=[o.name for o in reference_model.graph.output])
    if runtime == ANE_EMULATION:
        report.notes.append(f"runtime {ANE_EMULATION} is an EMULATION of the Neural Engine on the interpreter (fp16 "
                            "compute and the documented hazards), not the Neural Engine")
    report.notes.extend(f"hazard avoided: {rewrite}" for rewrite in hazards.applied(mlmodel))
    run = _Run(rows, nodes, reference, onnx_feeds, cfg, precision, runtime, compute_units, say, report,
               source_model, shapes, minimum_deployment_target)
    if method == "capture":
        _by_capture(run, mlmodel, feeds, reference_model, compression_report)
    elif method == "outputs":
        _by_outputs(run)
    else:
        _by_truncation(run)
        return report
    report.first_divergence = first_divergence(rows, nodes)
    return report


def _check_options(runtime: str, method: Optional[str]) -> str:
    """The method to use (the runtime's default if None), after checking both."""
    check_runtime(runtime)
    method = method or ("capture" if runtime in INTERPRETERS else "outputs")
    if method not in METHODS:
        raise ValidationInputError(f"method must be one of {', '.join(METHODS)}, not {method!r}")
    if method == "capture" and runtime not in INTERPRETERS:
        raise ValidationInputError("method 'capture' needs the MIL interpreter (runtime='mil'); "
                                   "use 'outputs' or 'truncation' with CoreML")
    return method


def _precision(name_map: Mapping, compute_precision) -> str:
    """The model's precision ("fp32" or "fp16"), which ``compute_precision``, if given, must match."""
    precision = name_map.get("precision", "fp16")
    if compute_precision is not None:
        asked = "fp32" if precision_of(compute_precision) == precision_of("fp32") else "fp16"
        if asked != precision:
            raise ValidationInputError(f"compute_precision={compute_precision!r} but the given model is {precision}")
    return precision


@dataclass
class _Run:
    """One validation: the reference's values, the rows to fill, and how to rebuild and run."""

    rows: list[LayerResult]
    nodes: list[OnnxNodeInfo]
    reference: Mapping[str, np.ndarray]
    feeds: Mapping[str, np.ndarray]  # as onnxruntime takes them (ImageType inputs preprocessed)
    cfg: Config
    precision: str
    runtime: str
    compute_units: object
    say: Callable[[str], None]
    report: ValidationReport
    source_model: onnx.ModelProto
    shapes: Mapping[str, tuple]
    target: object

    @property
    def tolerance(self) -> Mapping:
        return self.cfg.tolerance(self.precision)

    def rebuild(self, outputs: Optional[list] = None, target=None):
        """The source model built again with the model's config and precision, cut at ``outputs``."""
        return build_coreml(self.source_model, inputs=self.shapes, outputs=outputs, compute_precision=self.precision,
                            config=self.cfg.data, minimum_deployment_target=target or self.target)

    def probe(self, tensors: list[str]) -> None:
        """Rebuild with ``tensors`` as outputs, run it, and fill their rows (accumulated error)."""
        model = self.rebuild(tensors)
        outputs, _ = run_coreml_side(model, self.feeds, runtime=self.runtime, compute_units=self.compute_units)
        output_vars = pipeline_mod.read_name_map(model)["outputs"]
        wanted = set(tensors)
        for row in self.rows:
            if row.tensor in wanted:
                row.mil_var = output_vars.get(row.tensor)
                _fill(row, outputs.get(row.tensor), self.reference[row.tensor], self.tolerance, self.precision)


def _by_capture(run: _Run, mlmodel, feeds, reference_model, compression_report: bool) -> None:
    """Method "capture": the interpreter, end to end and op by op (see ``_compare_capture``)."""
    run.say(f"running the MIL program ({run.runtime}) end to end and op by op on the reference's values")
    magnitudes = _initializer_magnitudes(reference_model, run.nodes, run.cfg)
    allowance = _allowance(run.reference, run.feeds, magnitudes, run.nodes, run.precision, run.cfg)
    _compare_capture(mlmodel, feeds, run.rows, run.reference, run.tolerance, allowance, run.precision, run.runtime)
    compressed = _mark_compressed(run.rows, mlmodel)
    if compressed and compression_report:
        run.say("validating an uncompressed build for the compression report")
        uncompressed = run.rebuild(target=run.target or _target_of(mlmodel))
        baseline = validate(reference_model, uncompressed, inputs=run.feeds, config=run.cfg.data)
        run.report.compression = _rank_compression(run.rows, baseline, compressed)


def _by_outputs(run: _Run) -> None:
    """Method "outputs": one rebuild with every tensor as a model output, accumulated error only."""
    wanted = [r.tensor for r in run.rows if r.status in (_PENDING, FUSED)]
    run.say(f"rebuilding with {len(wanted)} tensors as outputs and running {run.runtime}")
    run.probe(wanted)
    run.report.notes.append("every ONNX tensor was exposed as a model output: on CoreML this changes the "
                            "CPU/GPU/ANE partitioning and can hide a device bug; confirm with method 'truncation'")
    run.report.notes.append("statuses judge the accumulated error: the local error of each op needs method 'capture'")


def _by_truncation(run: _Run) -> None:
    """Method "truncation": models cut at one tensor at a time, bisected to the first failure."""
    def probe(tensors: list[str]) -> None:
        run.say(f"probe: model cut at {', '.join(tensors)}")
        run.probe(tensors)

    worst, probes = bisect([r for r in run.rows if r.status in (_PENDING, FUSED)], run.nodes, probe)
    run.report.notes.append(f"truncation bisection: {probes} cut model(s) built and run; a tensor upstream of a "
                            "passing probe counts as passing (a cut model that matches implies its inputs did)")
    if worst is not None:
        node = next(n for n in run.nodes if worst in n.outputs)
        run.report.first_divergence = Divergence(node.name, node.op_type, worst, run.report.layer(worst))


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
    return ct.target(mlmodel.get_spec().specificationVersion)


def _model_label(given, proto: onnx.ModelProto) -> str:
    if isinstance(given, (str, Path)):
        return Path(given).name
    return proto.graph.name or "model"
