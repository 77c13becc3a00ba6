"""Load and check an ONNX model, infer static shapes, fold constant subgraphs.

Folding uses onnx's own reference evaluator, so a shape chain (Shape -> Gather -> Concat ->
Reshape) whose shapes are static becomes constants before any MIL is emitted. Folding and shape
inference alternate until nothing more folds (a folded Reshape target makes the next Shape static).
"""
from __future__ import annotations

import mmap
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Mapping, Optional, Union
import warnings

import numpy as np
import onnx
from onnx import external_data_helper, numpy_helper
from onnx.external_data_helper import load_external_data_for_tensor, uses_external_data
from onnx.reference import ReferenceEvaluator

from ...errors import InvalidModelError, ResourceLimitError
from .node import OnnxNode, canonical_domain

# Ops whose value differs per run (or per call) are never folded.
_NEVER_FOLD = {
    "RandomNormal", "RandomNormalLike", "RandomUniform", "RandomUniformLike", "Multinomial",
    "Bernoulli", "If", "Loop", "Scan",
}
# Folding that would create a constant larger than this many elements is left to the runtime.
_MAX_FOLDED_ELEMENTS = 1 << 24
# Fold -> re-infer rounds before giving up (EnCodec's legacy export needs 24).
MAX_FOLD_ROUNDS = 64


@dataclass
class TensorInfo:
    shape: Optional[tuple]  # ints, or str/None for symbolic/unknown dims; None if rank unknown
    dtype: Optional[np.dtype]

    @property
    def rank(self) -> Optional[int]:
        return None if self.shape is None else len(self.shape)

    @property
    def is_static(self) -> bool:
        return self.shape is not None and all(isinstance(d, int) for d in self.shape)


@dataclass
class LoadedGraph:
    model: onnx.ModelProto
    opsets: dict[str, int]
    nodes: list[OnnxNode]                     # topologically sorted, folded nodes excluded
    constants: dict[str, np.ndarray]          # initializers, Constant outputs, folded tensors
    info: dict[str, TensorInfo]
    inputs: list[str]                         # graph inputs that are not initializers
    outputs: list[str]
    folded: list[OnnxNode] = field(default_factory=list)
    fold_rounds: int = 0                      # fold -> re-infer rounds that folded something
    input_shapes: dict[str, tuple] = field(default_factory=dict)  # overrides the graph was loaded with
    base_dir: Optional[Path] = None  # where ``model``'s large initializers left external are read from

    @property
    def opset(self) -> int:
        return self.opsets.get("", 1)


def tensor_value(tensor: onnx.TensorProto) -> np.ndarray:
    """numpy_helper.to_array, with a malformed tensor (data that does not fit its dims or dtype) an
    InvalidModelError naming it."""
    try:
        return numpy_helper.to_array(tensor)
    except (ValueError, TypeError, KeyError, OverflowError, UnicodeDecodeError) as e:
        raise InvalidModelError(f"tensor '{tensor.name}' is malformed: {type(e).__name__}: {e}") from e


def _external_tensors(model: onnx.ModelProto, top_initializers: bool = True):
    """Tensors whose data lives in an external file (initializers and attribute tensors, nested
    graphs included; the main graph's initializers only if ``top_initializers``)."""
    for depth, g in enumerate((model.graph, *subgraphs(model.graph))):
        for t in g.initializer if top_initializers or depth else ():
            if uses_external_data(t):
                yield t
        for n in g.node:
            for a in n.attribute:
                for t in ([a.t] if a.HasField("t") else list(a.tensors)):
                    if uses_external_data(t):
                        yield t


def read_model(model: Union[str, Path, onnx.ModelProto]) -> onnx.ModelProto:
    """The ModelProto of a path or a ModelProto. External data is read from the model's folder only
    (onnx refuses locations that leave it: absolute paths, ``..``, symlinks); a ModelProto whose
    external data is not loaded is refused rather than read relative to the current directory."""
    if isinstance(model, onnx.ModelProto):
        _refuse_unloaded(model)
        return model
    return _parse(model, load_external_data=True)


def read_model_lean(model: Union[str, Path, onnx.ModelProto]) -> tuple[onnx.ModelProto, Optional[Path]]:
    """(ModelProto, folder) for the converter: a path's large top-level initializers stay in their
    external file (the proto keeps their references, ``initializer_value`` reads each once), so the
    weights are not held twice (protobuf's copy and numpy's) while the model is built. Everything
    else external (small tensors, nested graphs, attribute tensors) is loaded into the proto. Every
    read goes through onnx's ``load_external_data_for_tensor`` and its checks (location inside the
    model's folder, no symbolic link, bounds within the file). A ModelProto is returned as it is
    (folder None)."""
    if isinstance(model, onnx.ModelProto):
        return read_model(model), None
    proto = _parse(model, load_external_data=False)
    base_dir = Path(model).parent
    try:
        for t in proto.graph.initializer:
            if uses_external_data(t) and int(np.prod(t.dims)) <= _SMALL:
                load_external_data_for_tensor(t, str(base_dir))
        for t in list(_external_tensors(proto, top_initializers=False)):
            load_external_data_for_tensor(t, str(base_dir))
    except (OSError, ValueError, onnx.checker.ValidationError) as e:
        raise InvalidModelError(f"{model}: external data cannot be read ({type(e).__name__}: {e})") from e
    return proto, base_dir


# Tensor types whose external bytes are the array's (little-endian, one element per itemsize):
# these can be mapped; the others (packed 4-bit, strings, float8/bfloat16) are read and decoded.
_MAPPABLE = {onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16, onnx.TensorProto.BOOL,
             onnx.TensorProto.INT8, onnx.TensorProto.INT16, onnx.TensorProto.INT32, onnx.TensorProto.INT64,
             onnx.TensorProto.UINT8, onnx.TensorProto.UINT16, onnx.TensorProto.UINT32, onnx.TensorProto.UINT64}


def _mapped_value(tensor: onnx.TensorProto, base_dir: Path, maps: dict) -> Optional[np.ndarray]:
    """A tensor left in its external file, as an array over a copy-on-write memory map of that file
    (one map per file, kept in ``maps``): no read, no copy, pages come from the page cache as the
    weights are used (a 464 MB file: 0.68 s read -> 4 ms mapped). The file is opened by onnx's own
    checked open (location inside ``base_dir``, no symbolic link, ...) and the offset and length are
    bounded by its size as onnx bounds a read. None where this cannot apply (an onnx without that
    open, a type that is not mappable, a big-endian host, empty data, a length that does not fit the
    dims): the caller then reads it as onnx does, with onnx's errors."""
    open_checked = getattr(external_data_helper, "_open_external_data_fd", None)
    if open_checked is None or tensor.data_type not in _MAPPABLE or sys.byteorder != "little":
        return None
    dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type))
    shape = tuple(int(d) for d in tensor.dims)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    info = external_data_helper.ExternalDataInfo(tensor)
    fd = open_checked(str(base_dir), info.location, tensor.name, True)
    try:
        stat = os.fstat(fd)
        offset = info.offset or 0
        length = stat.st_size - offset if info.length is None else info.length
        if nbytes == 0 or offset + nbytes > stat.st_size or length != nbytes:
            return None
        key = (stat.st_dev, stat.st_ino)
        if key not in maps:
            maps[key] = mmap.mmap(fd, 0, access=mmap.ACCESS_COPY)
    finally:
        os.close(fd)
    return np.ndarray(shape, dtype=dtype, buffer=maps[key], offset=offset)


def initializer_value(tensor: onnx.TensorProto, base_dir: Optional[Path],
                      maps: Optional[dict] = None) -> np.ndarray:
    """``tensor_value``, with a tensor left in its external file (``read_model_lean``) memory-mapped
    where ``maps`` (a dict shared by one graph's initializers) is given (see ``_mapped_value``), else
    read once."""
    if not uses_external_data(tensor):
        return tensor_value(tensor)
    if maps is not None:
        try:
            mapped = _mapped_value(tensor, base_dir, maps)
        except (OSError, ValueError, onnx.checker.ValidationError) as e:
            raise InvalidModelError(f"tensor '{tensor.name}': external data cannot be read "
                                    f"({type(e).__name__}: {e})") from e
        if mapped is not None:
            return mapped
    loaded = onnx.TensorProto()
    loaded.CopyFrom(tensor)  # metadata only: the data is not in the proto
    try:
        load_external_data_for_tensor(loaded, str(base_dir))
    except (OSError, ValueError, onnx.checker.ValidationError) as e:
        raise InvalidModelError(f"tensor '{tensor.name}': external data cannot be read ({type(e).__name__}: {e})") from e
    return tensor_value(loaded)


def _refuse_unloaded(model: onnx.ModelProto) -> None:
    external = next(_external_tensors(model), None)
    if external is not None:
        location = next((e.value for e in external.external_data if e.key == "location"), "?")
        raise InvalidModelError(
            f"tensor '{external.name}' keeps its data in the external file '{location}', which is not "
            f"loaded: pass the model's path instead (its data is read from the model's folder), or "
            f"onnx.load it with load_external_data=True")


def _parse(model: Union[str, Path], *, load_external_data: bool) -> onnx.ModelProto:
    path = Path(model)
    if not path.is_file():
        raise InvalidModelError(f"{path}: no such ONNX file")
    try:
        return onnx.load(str(path), load_external_data=load_external_data)
    except Exception as e:  # protobuf decode errors have no common type
        raise InvalidModelError(f"{path}: not a readable ONNX model ({e})") from e


def _tensor_info(vi: onnx.ValueInfoProto) -> TensorInfo:
    t = vi.type
    if not t.HasField("tensor_type"):
        return TensorInfo(None, None)
    tt = t.tensor_type
    dtype = onnx.helper.tensor_dtype_to_np_dtype(tt.elem_type) if tt.elem_type else None
    if not tt.HasField("shape"):
        return TensorInfo(None, dtype)
    dims = []
    for d in tt.shape.dim:
        if d.HasField("dim_value"):
            dims.append(int(d.dim_value))
        elif d.HasField("dim_param"):
            dims.append(d.dim_param)
        else:
            dims.append(None)
    return TensorInfo(tuple(dims), dtype)


def subgraphs(graph: onnx.GraphProto):
    """Graphs nested in node attributes (If branches, Loop/Scan bodies), recursively."""
    for node in graph.node:
        for attr in node.attribute:
            nested = [attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs)
            for g in nested:
                yield g
                yield from subgraphs(g)


def _value_infos(graph: onnx.GraphProto):
    for g in (graph, *subgraphs(graph)):
        yield from g.input
        yield from g.value_info
        yield from g.output


def _infer(model: onnx.ModelProto) -> onnx.ModelProto:
    """Strict inference first; where it fails on a node whose schema inference onnx lacks or gets
    wrong (e.g. MeanVarianceNormalization without ``axes``), lenient inference keeps every shape it
    can, and builders refuse, with a reason, what then lacks a shape."""
    try:
        return onnx.shape_inference.infer_shapes(model, check_type=False, strict_mode=True, data_prop=True)
    except Exception as strict_error:  # onnx raises InferenceError, ValidationError or RuntimeError
        try:
            return onnx.shape_inference.infer_shapes(model, check_type=False, strict_mode=False, data_prop=True)
        except Exception as e:  # noqa: BLE001 - same untyped family as above
            raise InvalidModelError(f"ONNX shape inference failed: {strict_error}") from e


def _check(inferred: onnx.ModelProto) -> None:
    """onnx.checker on the shape-inferred model. A graph output whose rank even inference could
    not tell (e.g. a Loop's) has no shape field, which the checker calls malformed though runtimes
    accept it; the checker sees such outputs with an empty shape instead."""
    probe = inferred
    shapeless = [o for o in inferred.graph.output
                 if o.type.HasField("tensor_type") and not o.type.tensor_type.HasField("shape")]
    if shapeless:
        probe = onnx.ModelProto()
        probe.CopyFrom(inferred)
        for o in probe.graph.output:
            if o.type.HasField("tensor_type") and not o.type.tensor_type.HasField("shape"):
                o.type.tensor_type.shape.SetInParent()
    try:
        onnx.checker.check_model(probe, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as e:
        # An op deprecated at the model's opset (e.g. GroupNormalization 18-20) is still a valid
        # model that exporters wrote and runtimes run; its builder decides whether it converts.
        if "is deprecated in domain_version" in str(e):
            return
        # The full check adds strict shape inference, which onnx gets wrong for some valid models
        # (onnx's own test_mvn: MeanVarianceNormalization's function body); onnxruntime decides those.
        if _passes_basic_check(probe) and _onnxruntime_accepts(probe):
            return
        raise InvalidModelError(f"onnx.checker rejected the model: {e}") from e
    except ValueError as e:  # a string that is not UTF-8, an unknown tensor data type
        raise InvalidModelError(f"onnx.checker rejected the model: {type(e).__name__}: {e}") from e


def _passes_basic_check(model: onnx.ModelProto) -> bool:
    try:
        onnx.checker.check_model(model, full_check=False)
    except onnx.checker.ValidationError:
        return False
    return True


def _onnxruntime_accepts(model: onnx.ModelProto) -> bool:
    """Whether onnxruntime loads the model (its weights are typed inputs here: nothing is read)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 4
    try:
        ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    except Exception:  # noqa: BLE001 - onnxruntime raises its own Fail/InvalidGraph/... types: a refusal
        return False
    return True


def topological_order(graph: onnx.GraphProto, known: set[str]) -> list[onnx.NodeProto]:
    """Kahn's order, stable w.r.t. the file order (ONNX requires sorted graphs, exporters slip)."""
    producers = {o: i for i, n in enumerate(graph.node) for o in n.output if o}
    pending = list(graph.node)
    order, available = [], set(known)
    while pending:
        rest = []
        for n in pending:
            needs = [i for i in n.input if i and i in producers]
            if all(i in available for i in needs):
                order.append(n)
                available.update(o for o in n.output if o)
            else:
                rest.append(n)
        if len(rest) == len(pending):
            missing = sorted({i for n in rest for i in n.input if i and i not in available})
            raise InvalidModelError(f"graph has a cycle or dangling inputs: {missing[:5]}")
        pending = rest
    return order


def _fold(node: OnnxNode, proto: onnx.NodeProto, constants: dict, opsets: dict) -> Optional[list]:
    if node.domain or node.op_type in _NEVER_FOLD:
        return None
    if any(i and i not in constants for i in proto.input):
        return None
    inputs = [onnx.helper.make_tensor_value_info(f"in{k}", onnx.TensorProto.UNDEFINED, None)
              for k, i in enumerate(proto.input) if i]
    renamed = onnx.NodeProto()
    renamed.CopyFrom(proto)
    k = 0
    for j, name in enumerate(proto.input):
        if name:
            renamed.input[j] = f"in{k}"
            k += 1
    outs = [onnx.helper.make_tensor_value_info(o, onnx.TensorProto.UNDEFINED, None) for o in proto.output if o]
    g = onnx.helper.make_graph([renamed], "fold", inputs, outs)
    m = onnx.helper.make_model(g, opset_imports=[onnx.helper.make_opsetid("", opsets.get("", 1))])
    feeds = {f"in{k}": constants[i] for k, i in enumerate(i for i in proto.input if i)}
    try:
        values = ReferenceEvaluator(m).run(None, feeds)
    except Exception:  # noqa: BLE001 - a node the evaluator cannot run is simply built, not folded
        return None
    if any(np.asarray(v).size > _MAX_FOLDED_ELEMENTS for v in values):
        return None
    return [np.asarray(v) for v in values]


def graph_inputs(proto: onnx.ModelProto) -> dict[str, TensorInfo]:
    """The model's data inputs (graph inputs that are not initializers), as declared."""
    weights = {t.name for t in proto.graph.initializer}
    return {i.name: _tensor_info(i) for i in proto.graph.input if i.name not in weights}


DEFAULT_MAX_CONSTANT_BYTES = 1 << 30


def _folded_nbytes(node: OnnxNode, proto: onnx.NodeProto, constants: dict, info: dict) -> Optional[int]:
    """Bytes the outputs of a node on constant inputs would take, from the inferred shapes or, for
    the ops that make large tensors from small inputs, from those inputs; None if unknown."""
    total = 0
    for o in (o for o in proto.output if o):
        ti = info.get(o)
        if ti is None or not ti.is_static:
            break
        total += int(np.prod(ti.shape, dtype=object)) * (ti.dtype.itemsize if ti.dtype is not None else 8)
    else:
        return total
    inputs = [constants.get(i) if i else None for i in proto.input]
    try:
        if node.op_type == "ConstantOfShape":
            value = node.attrs.get("value")
            itemsize = numpy_helper.to_array(value).dtype.itemsize if value is not None else 4
            return int(np.prod([int(d) for d in inputs[0].reshape(-1)], dtype=object)) * itemsize
        if node.op_type == "Expand":
            x, shape = inputs[0], [int(d) for d in inputs[1].reshape(-1)]
            dims = list(x.shape)
            rank = max(len(dims), len(shape))
            dims, shape = [1] * (rank - len(dims)) + dims, [1] * (rank - len(shape)) + shape
            return int(np.prod([max(a, b) for a, b in zip(dims, shape)], dtype=object)) * x.itemsize
        if node.op_type == "Tile":
            x, repeats = inputs[0], [int(r) for r in inputs[1].reshape(-1)]
            return int(np.prod([d * r for d, r in zip(x.shape, repeats)], dtype=object)) * x.itemsize
        if node.op_type == "Range":
            start, limit, delta = (np.asarray(v).item() for v in inputs[:3])
            count = max(int(np.ceil((limit - start) / delta)), 0) if delta else 0
            return count * np.asarray(inputs[0]).itemsize
    except (TypeError, ValueError, IndexError, OverflowError, AttributeError):
        return None
    return None


def _check_fold_size(node: OnnxNode, proto: onnx.NodeProto, constants: dict, info: dict, limit: int) -> None:
    """Refuse, before computing it, a constant over ``limit`` bytes (memory bombs: a 1 KB file whose
    ConstantOfShape asks for 100 GiB)."""
    if node.domain or node.op_type in _NEVER_FOLD or any(i and i not in constants for i in proto.input):
        return
    nbytes = _folded_nbytes(node, proto, constants, info)
    if nbytes is not None and nbytes > limit:
        raise ResourceLimitError(node.name, node.op_type, node.opset, nbytes, limit,
                                 "its inputs are constant, so the build would compute an output")


def _check_range_sizes(graph: onnx.GraphProto, opsets: dict, limit: int) -> None:
    """Range on constant scalars, checked before shape inference: onnx's data propagation
    materialises a Range's values (a 1 KB file can make it allocate terabytes)."""
    scalars = {t.name: t for t in graph.initializer if len(t.dims) == 0}
    scalars.update({n.output[0]: a.t for n in graph.node if n.op_type == "Constant" and not n.domain
                    for a in n.attribute if a.name == "value" and len(a.t.dims) == 0})
    for index, p in enumerate(graph.node):
        if p.op_type != "Range" or p.domain or len(p.input) < 3 or not all(i in scalars for i in p.input[:3]):
            continue
        node = OnnxNode(p, opsets.get("", 1), index)
        values = {i: tensor_value(scalars[i]) for i in p.input[:3]}
        nbytes = _folded_nbytes(node, p, values, {})
        if nbytes is not None and nbytes > limit:
            raise ResourceLimitError(node.name, node.op_type, node.opset, nbytes, limit,
                                     "its inputs are constant, so shape inference would compute an output")


def load_graph(model: Union[str, Path, onnx.ModelProto], *, check: bool = True,
               input_shapes: Optional[Mapping[str, tuple]] = None,
               max_constant_bytes: int = DEFAULT_MAX_CONSTANT_BYTES, base_dir: Optional[Path] = None) -> LoadedGraph:
    """``input_shapes``: {input name: dims}, each an int or a dim_param name (str), replacing the
    declared input shapes before inference and folding, so nothing is folded for a length the
    model will not run at (a static ONNX given a flexible shape is re-inferred symbolically).
    ``max_constant_bytes``: the largest constant folding may compute (ResourceLimitError above).
    A path is read with ``read_model_lean``; ``base_dir``: the folder of a ModelProto that
    ``read_model_lean`` returned (its large initializers are read from there)."""
    try:
        return _load_graph(model, check=check, input_shapes=input_shapes, max_constant_bytes=max_constant_bytes,
                           base_dir=base_dir)
    except UnicodeDecodeError as e:  # protobuf decodes string fields (names, attributes) on access
        raise InvalidModelError(f"a string of the model is not UTF-8: {e}") from e


def _load_graph(model: Union[str, Path, onnx.ModelProto], *, check: bool,
                input_shapes: Optional[Mapping[str, tuple]], max_constant_bytes: int,
                base_dir: Optional[Path]) -> LoadedGraph:
    if base_dir is None:
        proto, base_dir = read_model_lean(model)
    else:
        proto = model
    if not proto.HasField("graph"):
        raise InvalidModelError("model has no graph")
    _check_range_sizes(proto.graph, {canonical_domain(o.domain): o.version for o in proto.opset_import},
                       max_constant_bytes)
    overrides = dict(input_shapes or {})
    # Inference and the checker see a skeleton: weights as typed inputs, not 100s of MB of data.
    inferred = _infer(_skeleton(proto, proto.graph.node, _small_initializers(proto.graph.initializer),
                                _typed(proto.graph.initializer), overrides))
    if check:
        _check(inferred)
    opsets = {canonical_domain(o.domain): o.version for o in proto.opset_import}
    graph = proto.graph
    maps: dict = {}  # the external files, each mapped once (see _mapped_value)
    constants: dict[str, np.ndarray] = {t.name: initializer_value(t, base_dir, maps) for t in graph.initializer}
    inputs = [i.name for i in graph.input if i.name not in constants]

    info = {vi.name: _tensor_info(vi) for vi in _value_infos(inferred.graph)}

    order = topological_order(graph, set(inputs) | set(constants))
    nodes = [OnnxNode(p, opsets.get(canonical_domain(p.domain), 1), index) for index, p in enumerate(order)]
    position = {id(n): k for k, n in enumerate(nodes)}
    folded: list[OnnxNode] = []
    rounds = 0
    info.update({name: TensorInfo(tuple(int(d) for d in v.shape), v.dtype) for name, v in constants.items()})
    while True:
        nodes, newly = _fold_pass(nodes, constants, info, opsets, max_constant_bytes)
        if not newly:
            break
        folded += newly
        for name, v in constants.items():
            info[name] = TensorInfo(tuple(int(d) for d in v.shape), v.dtype)
        info = _reinfer(proto, constants, info, overrides)
        rounds += 1
        if rounds == MAX_FOLD_ROUNDS:
            if _fold_pass(nodes, dict(constants), dict(info), opsets, max_constant_bytes)[1]:
                warnings.warn(f"constant folding stopped after {MAX_FOLD_ROUNDS} fold -> re-infer rounds "
                              f"with foldable nodes left; builders see them as runtime tensors",
                              stacklevel=2)
            break
    folded.sort(key=lambda n: position[id(n)])
    return LoadedGraph(proto, opsets, nodes, constants, info, inputs, [o.name for o in graph.output], folded,
                       rounds, overrides, base_dir)


def _fold_pass(nodes: list[OnnxNode], constants: dict, info: dict, opsets: dict,
               max_constant_bytes: int) -> tuple[list, list]:
    """One pass in topological order: (nodes kept, nodes folded); folded outputs enter ``constants``."""
    kept, folded = [], []
    unknown = TensorInfo(None, None)
    for node in nodes:
        p = node.proto
        values = None
        if node.op_type == "Constant" and not node.domain:
            values = [constant_value(node)]
        elif node.op_type in ("Shape", "Size") and not node.domain:
            values = _fold_shape(node, info.get(p.input[0], unknown).shape) or _fold(node, p, constants, opsets)
        elif (node.op_type == "CastLike" and not node.domain and p.input[0] in constants
              and info.get(p.input[1], unknown).dtype is not None):
            # only the dtype of the second input matters, not its values
            values = [constants[p.input[0]].astype(info[p.input[1]].dtype)]
        else:
            _check_fold_size(node, p, constants, info, max_constant_bytes)
            values = _fold(node, p, constants, opsets)
        if values is None:
            kept.append(node)
            continue
        folded.append(node)
        for name, v in zip([o for o in p.output if o], values):
            constants[name] = v
    return kept, folded


def constant_value(node: OnnxNode) -> np.ndarray:
    """The value of an ONNX Constant node, whichever attribute carries it."""
    for attr, dtype in (("value", None), ("value_float", np.float32), ("value_floats", np.float32),
                        ("value_int", np.int64), ("value_ints", np.int64)):
        if any(a.name == attr for a in node.proto.attribute):
            value = node.attrs[attr]
            return tensor_value(value) if dtype is None else np.asarray(value, dtype=dtype)
    raise InvalidModelError(f"Constant node '{node.name}' has no supported value attribute "
                            f"({', '.join(a.name for a in node.proto.attribute)})")


def _fold_shape(node: OnnxNode, shape: Optional[tuple]) -> Optional[list]:
    """Shape/Size of a tensor whose (selected) dims are static; None otherwise."""
    if shape is None:
        return None
    if node.op_type == "Size":
        static = all(isinstance(d, int) for d in shape)
        return [np.array(int(np.prod(shape)), dtype=np.int64)] if static else None
    rank = len(shape)
    start = node.attr("start", 0)
    end = node.attr("end", rank)
    start = max(0, min(rank, start + rank if start < 0 else start))
    end = max(0, min(rank, end + rank if end < 0 else end))
    if not all(isinstance(d, int) for d in shape[start:end]):
        return None
    return [np.array(shape[start:end], dtype=np.int64)]


def _folded_skeleton(proto: onnx.ModelProto, constants: dict, input_shapes: Mapping[str, tuple]) -> onnx.ModelProto:
    kept = [n for n in proto.graph.node if not any(o in constants for o in n.output if o)]
    small = [numpy_helper.from_array(v, k) for k, v in constants.items() if v.size <= _SMALL]
    large = {k: (onnx.helper.np_dtype_to_tensor_dtype(v.dtype), v.shape)
             for k, v in constants.items() if v.size > _SMALL}
    return _skeleton(proto, kept, small, large, input_shapes)


def _reinfer(proto: onnx.ModelProto, constants: dict, info: dict, input_shapes: Mapping[str, tuple]) -> dict:
    """Shape inference again with folded tensors as initializers: Reshape targets become static."""
    inferred = _infer(_folded_skeleton(proto, constants, input_shapes))
    out = dict(info)
    for vi in _value_infos(inferred.graph):
        ti = _tensor_info(vi)
        if vi.name not in constants and (ti.shape is not None or vi.name not in out):
            out[vi.name] = ti
    return out


def shapes_at(graph: LoadedGraph, input_shapes: Mapping[str, tuple]) -> dict[str, Optional[tuple]]:
    """Every tensor's shape as onnx's inference gives it with the inputs at ``input_shapes`` (the
    folded graph; e.g. at the inputs' lower bounds, to bound a symbolic dim). Unknown -> None."""
    try:
        inferred = _infer(_folded_skeleton(graph.model, graph.constants, input_shapes))
    except InvalidModelError:
        return {}
    return {vi.name: _tensor_info(vi).shape for vi in _value_infos(inferred.graph)}


_SMALL = 4096  # constants up to this many elements keep their values for inference (shape data)


def _small_initializers(initializers) -> list:
    return [t for t in initializers if int(np.prod(t.dims)) <= _SMALL]


def _typed(initializers) -> dict:
    return {t.name: (t.data_type, tuple(t.dims)) for t in initializers if int(np.prod(t.dims)) > _SMALL}


def _skeleton(proto: onnx.ModelProto, nodes, initializers, typed: dict,
              input_shapes: Mapping[str, tuple] = MappingProxyType({})) -> onnx.ModelProto:
    """The model without its large tensors: those become graph inputs of the same type and shape,
    so shape inference and the checker never serialise the weights. Inputs named in
    ``input_shapes`` take those dims; declared output and intermediate shapes are then dropped
    (they were written for the declared input shapes)."""
    m = onnx.ModelProto()
    m.ir_version = proto.ir_version
    m.opset_import.extend(proto.opset_import)
    m.functions.extend(proto.functions)
    g = m.graph
    g.name = proto.graph.name
    g.node.extend(nodes)
    g.initializer.extend(initializers)
    for i in proto.graph.input:
        if i.name in typed:
            continue
        if i.name in input_shapes and i.type.HasField("tensor_type"):
            i = onnx.helper.make_tensor_value_info(i.name, i.type.tensor_type.elem_type, list(input_shapes[i.name]))
        g.input.append(i)
    g.input.extend(onnx.helper.make_tensor_value_info(name, elem, dims) for name, (elem, dims) in typed.items())
    if input_shapes:
        g.output.extend(onnx.helper.make_tensor_value_info(o.name, o.type.tensor_type.elem_type, None)
                        if o.type.HasField("tensor_type") else o for o in proto.graph.output)
    else:
        g.output.extend(proto.graph.output)
        g.value_info.extend(proto.graph.value_info)
    return m
