"""``build_coreml``: ONNX model -> CoreML ML Program, one builder per ONNX op."""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Optional, Sequence, Union

import coremltools as ct
import numpy as np
import onnx

from .. import __version__
from ..errors import InputError, InvalidModelError, OptionError, UnsupportedOperatorError
from . import pipeline as pipeline_mod
from .config import Config
from .context import BuildContext
from .graph import collect_refusals, emit_program, scalar_inputs
from .loader import LoadedGraph, load_graph, subgraphs

DEFAULT_TARGET = ct.target.iOS15
DEFAULT_DIM_UPPER = 16384

_PRECISIONS = {"fp16": ct.precision.FLOAT16, "fp32": ct.precision.FLOAT32,
               "float16": ct.precision.FLOAT16, "float32": ct.precision.FLOAT32}


def precision_of(compute_precision) -> ct.precision:
    """ct.precision from ct.precision or 'fp16'/'fp32'; None means fp16, as in coremltools."""
    if compute_precision is None:
        return ct.precision.FLOAT16
    if isinstance(compute_precision, str):
        try:
            return _PRECISIONS[compute_precision.lower()]
        except KeyError:
            raise OptionError("compute_precision", f"must be fp16 or fp32, not {compute_precision!r}") from None
    return compute_precision


def _check_shape(graph: LoadedGraph, name: str, shape) -> tuple:
    """The shape given for input ``name`` as a tuple; an InputError where it contradicts the
    model (another rank, or another size where the model fixes one)."""
    try:
        dims = tuple(shape)
    except TypeError:
        raise InputError(name, f"shape must be a sequence of dims, not {type(shape).__name__}") from None
    declared = graph.info[name].shape
    if declared is not None and len(declared) != len(dims):
        raise InputError(name, f"shape {_dims(dims)} has rank {len(dims)}; the model's input has rank "
                               f"{len(declared)} {_dims(declared)}")
    for i, d in enumerate(dims):
        if isinstance(d, (int, np.integer)) and not isinstance(d, bool):
            if d < 0:
                raise InputError(name, f"dim {i} of shape {_dims(dims)} is negative")
            if declared is not None and isinstance(declared[i], int) and declared[i] != d:
                raise InputError(name, f"shape {_dims(dims)} contradicts the model's {_dims(declared)} at dim {i}")
        elif declared is not None and isinstance(declared[i], int):
            raise InputError(name, f"dim {i} of shape {_dims(dims)} is flexible where the model fixes it to "
                                   f"{declared[i]} {_dims(declared)}")
    return dims


def _dims(shape) -> str:
    return "(" + ", ".join("?" if d is None else str(d) for d in shape) + ")"


def _input_overrides(graph: LoadedGraph, inputs) -> tuple[dict, Optional[list]]:
    """Static shapes by ONNX input name, and ct.TensorType inputs for ct.convert (RangeDim etc.)."""
    if inputs is None:
        return {}, None
    if isinstance(inputs, Mapping):
        unknown = [k for k in inputs if k not in graph.inputs]
        if unknown:
            raise InputError(unknown[0], f"not an input of the model (its inputs: {graph.inputs})")
        return {k: _check_shape(graph, k, v) for k, v in inputs.items()}, None
    if isinstance(inputs, (str, bytes)) or not isinstance(inputs, Sequence):
        raise InputError(None, f"inputs= must be {{name: shape}} or a list of ct.TensorType, not {type(inputs).__name__}")
    shapes, types_ = {}, []
    for t in inputs:
        if not isinstance(t, ct.TensorType):
            raise InputError(None, f"inputs= list items must be ct.TensorType, not {type(t).__name__}")
        if t.name not in graph.inputs:
            raise InputError(t.name, f"not an input of the model (its inputs: {graph.inputs})")
        types_.append(t)
        if t.shape is not None:
            shapes[t.name] = _check_shape(graph, t.name, t.shape.symbolic_shape)
    return shapes, types_


def _default_flexible_inputs(ctx: BuildContext, shapes: Mapping) -> list:
    """Symbolic ONNX dims the user gave no bounds for: 1..DEFAULT_DIM_UPPER, default 1.
    (ML Programs need a finite bound; coremltools' own default would cap them at 2.)"""
    flexible = []
    for name in ctx.graph.inputs:
        shape = shapes.get(name, ctx.shape(name))
        if all(isinstance(d, int) and d >= 0 for d in shape):
            continue
        dims = [d if isinstance(d, int) and d >= 0 else ct.RangeDim(lower_bound=1, upper_bound=DEFAULT_DIM_UPPER, default=1)
                for d in shape]
        flexible.append(ct.TensorType(name=ctx.mil_name(name), shape=ct.Shape(dims)))
    return flexible


def _prune(graph: LoadedGraph, outputs: Sequence[str]) -> None:
    """Keep only the nodes the requested outputs depend on."""
    producers = {o: n for n in graph.nodes for o in n.outputs if o}
    known = set(graph.inputs) | set(graph.constants) | set(producers)
    missing = [o for o in outputs if o not in known]
    if missing:
        raise OptionError("outputs", f"{missing} are not tensors of the model")
    needed, stack = set(), list(outputs)
    while stack:
        t = stack.pop()
        n = producers.get(t)
        if n is None or id(n) in needed:
            continue
        needed.add(id(n))
        stack.extend(i for i in n.inputs if i)
    graph.nodes = [n for n in graph.nodes if id(n) in needed]
    graph.outputs = list(outputs)


def build_coreml(
    model: Union[str, Path, onnx.ModelProto],
    *,
    inputs=None,
    outputs: Optional[Sequence] = None,
    minimum_deployment_target=None,
    compute_precision=None,
    compute_units=ct.ComputeUnit.ALL,
    config=None,
    pass_pipeline: Optional[ct.PassPipeline] = None,
    verbose: bool = False,
) -> ct.models.MLModel:
    """Convert an ONNX model (path or ModelProto) into a CoreML ML Program.

    ``inputs``: ``{onnx_name: shape}`` or a list of ``ct.TensorType`` named by ONNX input names.
    ``outputs``: ONNX tensor names to expose as outputs (default: the graph's outputs).
    ``compute_precision``: fp16 by default, like coremltools. ``config``: dict or YAML path.
    ``pass_pipeline``: a base ct.PassPipeline; the passes that undo onnx2mil's lowerings are
    always removed from it (see ``onnx2mil.backend.pipeline``).
    """
    cfg = Config.load(config)
    target = minimum_deployment_target or DEFAULT_TARGET
    graph = load_graph(model, max_constant_bytes=cfg.data["limits"]["max_constant_bytes"])
    cfg.check_nodes([n.name for n in (*graph.nodes, *graph.folded)]
                    + [n.name for g in subgraphs(graph.model.graph) for n in g.node])
    if not graph.inputs:
        raise InvalidModelError("model has no non-constant inputs; CoreML needs at least one input")
    if outputs is not None:
        _prune(graph, [getattr(o, "name", o) for o in outputs])
    shapes, tensor_types = _input_overrides(graph, inputs)

    ctx = BuildContext(graph, cfg, target)
    refusals = collect_refusals(ctx)
    if refusals:
        raise UnsupportedOperatorError(refusals)
    pipeline = pipeline_mod.pass_pipeline(cfg, pass_pipeline)
    if precision_of(compute_precision) == ct.precision.FLOAT16:
        pipeline_mod.warn_fp16_overflow(graph.nodes, graph.constants)
    with pipeline_mod.coremltools_session():  # emission and conversion, one build at a time
        prog = emit_program(ctx, shapes)
        if tensor_types:
            tensor_types = [ct.TensorType(name=ctx.mil_name(t.name), shape=t.shape, dtype=t.dtype)
                            for t in tensor_types]
        else:
            tensor_types = _default_flexible_inputs(ctx, shapes) or None
        mlmodel = pipeline_mod.convert(
            prog, target=target, compute_precision=precision_of(compute_precision),
            compute_units=compute_units, pipeline=pipeline, inputs=tensor_types, verbose=verbose)

    final = pipeline_mod.resolve_names(pipeline_mod.final_program(mlmodel), ctx.name_map)
    name_map = {
        "inputs": {n: ctx.mil_name(n) for n in graph.inputs},
        "scalar_inputs": scalar_inputs(ctx, shapes),  # fed as shape (1,): CoreML has no rank-0 inputs
        "outputs": {n: final[n] for n in graph.outputs},
        "tensors": {o: final.get(o) for node in graph.nodes for o in node.outputs if o},
        "folded": [o for node in graph.folded for o in node.outputs if o],
        "precision": "fp32" if precision_of(compute_precision) == ct.precision.FLOAT32 else "fp16",
    }
    pipeline_mod.write_metadata(mlmodel, name_map=name_map, pipeline=pipeline, config=cfg,
                                version=__version__)
    return mlmodel
