"""``build_coreml``: ONNX model -> CoreML ML Program, one builder per ONNX op."""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Optional, Sequence, Union

import coremltools as ct
import numpy as np
import onnx
from coremltools.converters.mil.mil.types.symbolic import is_symbolic

from ... import __version__
from ...errors import InputError, InvalidModelError, OptionError, StaticAxisError, UnsupportedOperatorError
from . import pipeline as pipeline_mod
from .config import Config
from .context import DEFAULT_DIM_UPPER, BuildContext
from .graph import collect_refusals, emit_program, scalar_inputs
from .loader import LoadedGraph, TensorInfo, graph_inputs, load_graph, read_model_lean, subgraphs

DEFAULT_TARGET = ct.target.iOS15

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


def _check_shape(declared: Mapping[str, TensorInfo], name: str, shape) -> tuple:
    """The shape given for input ``name`` as a tuple; an InputError where it contradicts the
    model (another rank, a negative dim, or another size where the model fixes one). A flexible
    dim where the model has a static one is allowed: the graph is re-inferred at the given shape."""
    try:
        dims = tuple(shape)
    except TypeError:
        raise InputError(name, f"shape must be a sequence of dims, not {type(shape).__name__}") from None
    fixed = declared[name].shape
    if fixed is not None and len(fixed) != len(dims):
        raise InputError(name, f"shape {_dims(dims)} has rank {len(dims)}; the model's input has rank "
                               f"{len(fixed)} {_dims(fixed)}")
    for i, d in enumerate(dims):
        if isinstance(d, (int, np.integer)) and not isinstance(d, bool):
            if d < 0:
                raise InputError(name, f"dim {i} of shape {_dims(dims)} is negative")
            if fixed is not None and isinstance(fixed[i], int) and fixed[i] != d:
                raise InputError(name, f"shape {_dims(dims)} contradicts the model's {_dims(fixed)} at dim {i}")
    return dims


def _dims(shape) -> str:
    return "(" + ", ".join("?" if d is None else str(d) for d in shape) + ")"


def _input_overrides(declared: Mapping[str, TensorInfo], inputs) -> tuple[dict, dict, dict, dict]:
    """From ``inputs=``, by ONNX input name: placeholder shapes (ints and MIL symbols), the
    ct.TensorTypes given, the shapes the loader re-infers the graph with (ints and dim_param
    names: a flexible dim keeps the ONNX dim_param at its axis, so dims the graph ties together stay
    tied, else it is named after its input and axis), and the dims made flexible on axes the ONNX
    model has static ({dim name: (input, axis, ONNX size)})."""
    if inputs is None:
        return {}, {}, {}, {}
    if isinstance(inputs, Mapping):
        unknown = [k for k in inputs if k not in declared]
        if unknown:
            raise InputError(unknown[0], f"not an input of the model (its inputs: {list(declared)})")
        shapes, types_ = {k: _check_shape(declared, k, v) for k, v in inputs.items()}, {}
    else:
        if isinstance(inputs, (str, bytes)) or not isinstance(inputs, Sequence):
            raise InputError(None, f"inputs= must be {{name: shape}} or a list of ct.TensorType, "
                                   f"not {type(inputs).__name__}")
        shapes, types_ = {}, {}
        for t in inputs:
            if not isinstance(t, (ct.TensorType, ct.ImageType)):
                raise InputError(None, f"inputs= list items must be ct.TensorType or ct.ImageType, "
                                       f"not {type(t).__name__}")
            if isinstance(t, ct.ImageType):
                _check_image(declared, t)
            if t.name not in declared:
                raise InputError(t.name, f"not an input of the model (its inputs: {list(declared)})")
            types_[t.name] = t
            if t.shape is not None:
                shapes[t.name] = _check_shape(declared, t.name, t.shape.symbolic_shape)
    loader_shapes, names, made_flexible = {}, {}, {}
    for name, shape in shapes.items():
        onnx_shape = declared[name].shape
        dims = []
        for axis, d in enumerate(shape):
            if isinstance(d, (int, np.integer)) and d >= 0:
                dims.append(int(d))
                continue
            key = str(d) if is_symbolic(d) else (name, axis)
            if key not in names:
                onnx_dim = onnx_shape[axis] if onnx_shape is not None else None
                names[key] = onnx_dim if isinstance(onnx_dim, str) else f"{name}_dim{axis}"
            if isinstance(onnx_shape[axis] if onnx_shape is not None else None, int):
                made_flexible.setdefault(names[key], []).append((name, axis, onnx_shape[axis]))
            dims.append(names[key])
        loader_shapes[name] = tuple(dims)
    return shapes, types_, loader_shapes, made_flexible


# Input axes a node's weights fix (the input channels of Conv and the norms): {op type: axis of input 0}.
_CHANNEL_AXIS = {"Conv": 1, "ConvTranspose": 1, "BatchNormalization": 1, "InstanceNormalization": 1,
                 "GroupNormalization": 1}


def _weight_fixed_axis(graph: LoadedGraph, node) -> Optional[int]:
    """The axis of ``node``'s input 0 its constant weights fix, if any: the channels of Conv and the
    norms, the contracted dim of MatMul / Gemm by a constant matrix."""
    if node.op_type in _CHANNEL_AXIS:
        return _CHANNEL_AXIS[node.op_type]
    if node.op_type in ("MatMul", "Gemm") and len(node.inputs) > 1 and node.inputs[1] in graph.constants:
        return 0 if node.op_type == "Gemm" and node.attr("transA", 0) else -1
    return None


def _check_flexible_axes(graph: LoadedGraph, made_flexible: Mapping[str, tuple]) -> None:
    """A dim ``inputs=`` made flexible on an axis the ONNX model has static must not reach an axis
    the weights fix (a Conv's input channels): an InputError names the input, the dim and the node.
    (A time or sequence axis reaches no such axis and stays flexible.)"""
    if not made_flexible:
        return
    for node in graph.nodes:
        axis = _weight_fixed_axis(graph, node) if node.inputs and node.inputs[0] else None
        info = graph.info.get(node.inputs[0]) if axis is not None else None
        if info is None or info.shape is None or not info.shape:
            continue
        dim = info.shape[axis]
        if isinstance(dim, str) and dim in made_flexible:
            name, at, size = made_flexible[dim][0]
            raise StaticAxisError(name, f"dim {at} is flexible in inputs=, but the ONNX model has it static ({size}) and "
                                   f"node '{node.name}' ({node.op_type}) needs it static: its weights fix axis "
                                   f"{axis % len(info.shape)} of its input '{node.inputs[0]}' (give dim {at} as "
                                   f"{size}, or export with that axis dynamic)",
                                  [(n, a) for n, a, _ in made_flexible[dim]])


_IMAGE_CHANNELS = {"RGB": 3, "BGR": 3, "G": 1, "G_FLOAT16": 1}


def _check_image(declared: Mapping[str, TensorInfo], t) -> None:
    """An ImageType input onnx2mil can honour: NCHW (as ONNX vision models take it), batch 1 (CoreML
    feeds one pixel buffer), the colour layout's channel count, a float input; else an InputError."""
    shape = declared[t.name].shape
    channels = _IMAGE_CHANNELS[t.color_layout.value] if hasattr(t.color_layout, "value") else None
    if t.channel_first is False:
        raise InputError(t.name, "ImageType with channel_first=False (NHWC) is not supported: the ONNX "
                                 "input is NCHW; leave channel_first unset")
    if shape is None or len(shape) != 4:
        raise InputError(t.name, f"an ImageType input must be rank 4 (N, C, H, W), the model's is {shape}")
    if channels is not None and isinstance(shape[1], int) and shape[1] != channels:
        raise InputError(t.name, f"colour layout {t.color_layout.value} has {channels} channel(s), the model's "
                                 f"input has {shape[1]}")
    if isinstance(shape[0], int) and shape[0] != 1:
        raise InputError(t.name, f"an ImageType input takes one image (batch 1), the model's batch is {shape[0]}")
    dtype = declared[t.name].dtype
    if dtype is not None and np.dtype(dtype).kind != "f":
        raise InputError(t.name, f"an ImageType input must be float in the ONNX model, not {np.dtype(dtype)}")


def _check_image_output(graph: LoadedGraph, t) -> None:
    """An ImageType output as ct.convert takes one: no shape, scale 1, no bias, channel_first unset
    (an output is not deprocessed), and a float tensor (1, C, H, W) with the colour layout's C; else
    an OptionError naming the output."""
    def refuse(reason: str):
        raise OptionError("outputs", f"image output '{t.name}': {reason}")

    if t.shape is not None:
        refuse("give no shape (it is the tensor's own, as with ct.convert)")
    if t.scale != 1.0 or not (t.bias is None or np.all(np.asarray(t.bias, dtype=np.float64) == 0)):
        refuse(f"scale {t.scale} / bias {t.bias}: an output is not deprocessed (as with ct.convert, scale must "
               "be 1 and bias 0): scale the tensor in the model")
    if t.channel_first is not None:
        refuse("channel_first must be unset (the output is the tensor's NCHW layout)")
    info = graph.info.get(t.name)
    shape = info.shape if info is not None else None
    channels = _IMAGE_CHANNELS[t.color_layout.value]
    if shape is None or len(shape) != 4:
        refuse(f"an image output must be rank 4 (1, C, H, W), the tensor's shape is {shape}")
    if shape[0] != 1 or shape[1] != channels:
        refuse(f"colour layout {t.color_layout.value} needs shape (1, {channels}, H, W), the tensor's is "
               f"{_dims(shape)}")
    if info.dtype is not None and np.dtype(info.dtype).kind != "f":
        refuse(f"an image output must be float, not {np.dtype(info.dtype)}")


def _renamed(t, mil_name: str):
    """``t`` for ct.convert, named by the MIL input name (ImageType keeps its preprocessing)."""
    if isinstance(t, ct.ImageType):
        return ct.ImageType(name=mil_name, shape=t.shape, scale=t.scale, bias=t.bias,
                            color_layout=t.color_layout, channel_first=True)
    return ct.TensorType(name=mil_name, shape=t.shape, dtype=t.dtype)


def image_preprocessing(types_: Mapping) -> dict:
    """{ONNX input: {"scale", "bias" (per channel), "color_layout"}} for the ImageType inputs: what
    the model applies to the pixels, so onnxruntime can be fed the same values."""
    out = {}
    for name, t in types_.items():
        if isinstance(t, ct.ImageType):
            channels = _IMAGE_CHANNELS[t.color_layout.value]
            bias = np.broadcast_to(np.asarray(t.bias, dtype=np.float64).reshape(-1), (channels,))
            out[name] = {"scale": float(t.scale), "bias": [float(b) for b in bias], "color_layout": t.color_layout.value}
    return out


def _flexible_types(graph: LoadedGraph, given: Mapping[str, ct.TensorType], shapes: Mapping) -> dict:
    """ct.TensorTypes by ONNX name: those given, and for inputs with symbolic dims the user gave
    no bounds for, 1..DEFAULT_DIM_UPPER, default 1 (ML Programs need a finite bound;
    coremltools' own default would cap them at 2)."""
    types_ = dict(given)
    for name in graph.inputs:
        shape = shapes.get(name, graph.info[name].shape)
        if name in types_ or shape is None or all(isinstance(d, int) and d >= 0 for d in shape):
            continue
        dims = [d if isinstance(d, int) and d >= 0 else ct.RangeDim(lower_bound=1, upper_bound=DEFAULT_DIM_UPPER, default=1)
                for d in shape]
        types_[name] = ct.TensorType(name=name, shape=ct.Shape(dims))
    return types_


def _input_bounds(types_: Mapping[str, ct.TensorType]) -> dict:
    """{input: ((lower, upper) per axis)} from RangeDims (an unbounded one: up to
    DEFAULT_DIM_UPPER) and EnumeratedShapes (the smallest and largest size listed per axis)."""
    bounds = {}
    for name, t in types_.items():
        if isinstance(t.shape, ct.EnumeratedShapes):
            listed = [s.shape for s in t.shape.shapes]
            bounds[name] = tuple((min(s[a] for s in listed), max(s[a] for s in listed)) for a in range(len(listed[0])))
        elif t.shape is not None:
            bounds[name] = tuple(
                (d.lower_bound, d.upper_bound if d.upper_bound > 0 else DEFAULT_DIM_UPPER) if isinstance(d, ct.RangeDim)
                else (int(d), int(d)) for d in t.shape.shape)
    return bounds


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
    author: Optional[str] = None,
    license: Optional[str] = None,
    description: Optional[str] = None,
    version: Optional[str] = None,
) -> ct.models.MLModel:
    """Convert an ONNX model (path or ModelProto) into a CoreML ML Program.

    ``inputs``: ``{onnx_name: shape}`` or a list of ``ct.TensorType`` / ``ct.ImageType`` named by
    ONNX input names (an ImageType's scale, bias and colour layout are applied in the model, as
    ``ct.convert`` does; ``predict`` and ``validate`` then take pixels, arrays or PIL images).
    ``outputs``: ONNX tensor names to expose as outputs (default: the graph's outputs).
    ``compute_precision``: fp16 by default, like coremltools. ``config``: dict or YAML path.
    ``pass_pipeline``: a base ct.PassPipeline; the passes that undo onnx2mil's lowerings are
    always removed from it (see ``onnx2mil.backend.convert.pipeline``).
    ``author``, ``license``, ``description``, ``version``: the model's description fields; by
    default from the ONNX model (metadata_props ``author``/``license``, the graph's or model's
    doc_string, model_version); input and output descriptions come from their doc_strings.
    """
    cfg = Config.load(config)
    target = minimum_deployment_target or DEFAULT_TARGET
    proto, base_dir = read_model_lean(model)  # a file's weights are read once, into numpy only
    if not proto.HasField("graph"):
        raise InvalidModelError("model has no graph")
    shapes, given_types, loader_shapes, made_flexible = _input_overrides(graph_inputs(proto), inputs)
    graph = load_graph(proto, input_shapes=loader_shapes, max_constant_bytes=cfg.data["limits"]["max_constant_bytes"],
                       base_dir=base_dir)
    _check_flexible_axes(graph, made_flexible)
    cfg.check_nodes([n.name for n in (*graph.nodes, *graph.folded)]
                    + [n.name for g in subgraphs(graph.model.graph) for n in g.node])
    if not graph.inputs:
        raise InvalidModelError("model has no non-constant inputs; CoreML needs at least one input")
    image_outputs = {}
    if outputs is not None:
        _prune(graph, [getattr(o, "name", o) for o in outputs])
        image_outputs = {o.name: o for o in outputs if isinstance(o, ct.ImageType)}
        for t in image_outputs.values():
            _check_image_output(graph, t)
    types_ = _flexible_types(graph, given_types, shapes)

    precision = "fp32" if precision_of(compute_precision) == ct.precision.FLOAT32 else "fp16"
    ctx = BuildContext(graph, cfg, target, input_bounds=_input_bounds(types_), precision=precision)
    refusals = collect_refusals(ctx)
    if refusals:
        raise UnsupportedOperatorError(refusals)
    pipeline = pipeline_mod.pass_pipeline(cfg, pass_pipeline)
    if precision_of(compute_precision) == ct.precision.FLOAT16:
        pipeline_mod.warn_fp16_overflow(graph.nodes, graph.constants)
    with pipeline_mod.coremltools_session():  # emission and conversion, one build at a time
        prog = emit_program(ctx, shapes)
        if image_outputs:  # ct.convert takes `outputs=` for frontends only: a pymil program carries them
            prog.functions["main"].set_output_types([
                ct.ImageType(name=ctx.mil_name(o), color_layout=image_outputs[o].color_layout) if o in image_outputs
                else ct.TensorType(name=ctx.mil_name(o)) for o in graph.outputs])
        tensor_types = [_renamed(t, ctx.mil_name(name)) for name, t in types_.items()] or None
        mlmodel = pipeline_mod.convert(
            prog, target=target, compute_precision=precision_of(compute_precision),
            compute_units=compute_units, pipeline=pipeline, inputs=tensor_types, verbose=verbose)

    final = pipeline_mod.final_program(mlmodel)
    producers = {o: index for index, node in enumerate(graph.nodes) for o in node.outputs if o}
    consumers: dict = {}
    for index, node in enumerate(graph.nodes):
        for i in node.inputs:
            consumers.setdefault(i, []).append(index)
    tensors, unobservable = pipeline_mod.resolve_names(final, ctx.name_map, producers, consumers)
    name_map = {
        "inputs": {n: ctx.mil_name(n) for n in graph.inputs},
        "scalar_inputs": scalar_inputs(ctx, shapes),  # fed as shape (1,): CoreML has no rank-0 inputs
        "outputs": dict(zip(graph.outputs, (v.name for v in final.functions["main"].outputs))),
        "tensors": {o: tensors.get(o) for node in graph.nodes for o in node.outputs if o},
        "unobservable": unobservable,
        "image_inputs": image_preprocessing(types_),
        "image_outputs": {o: t.color_layout.value for o, t in image_outputs.items()},
        "folded": [o for node in graph.folded for o in node.outputs if o],
        "precision": precision,
    }
    pipeline_mod.write_metadata(mlmodel, name_map=name_map, pipeline=pipeline, config=cfg,
                                version=__version__)
    _describe(mlmodel, proto, name_map, author=author, license=license, description=description, version=version)
    return mlmodel


def _describe(mlmodel, proto: onnx.ModelProto, name_map: Mapping, **given) -> None:
    """CoreML's description fields from the ONNX model (what Xcode's model viewer shows), ``given``
    values first. ONNX metadata_props are kept in the user-defined metadata as ``onnx.<key>``."""
    props = {p.key: p.value for p in proto.metadata_props}
    fields = {
        "author": given["author"] or props.get("author"),
        "license": given["license"] or props.get("license"),
        "short_description": given["description"] or proto.graph.doc_string or proto.doc_string,
        "version": given["version"] or (str(proto.model_version) if proto.model_version else None),
    }
    for field, value in fields.items():
        if value:
            setattr(mlmodel, field, value)
    docs = {vi.name: vi.doc_string for vi in [*proto.graph.input, *proto.graph.output] if vi.doc_string}
    for onnx_name, mil_name in name_map["inputs"].items():
        if onnx_name in docs:
            mlmodel.input_description[mil_name] = docs[onnx_name]
    for onnx_name, mil_name in name_map["outputs"].items():
        if onnx_name in docs:
            mlmodel.output_description[mil_name] = docs[onnx_name]
    meta = mlmodel.user_defined_metadata
    if proto.producer_name:
        meta["onnx.producer"] = f"{proto.producer_name} {proto.producer_version}".strip()
    for key, value in props.items():
        meta[f"onnx.{key}"] = value
