"""The reference side of validation: the model's inputs (given, shaped or generated) and ONE
onnxruntime run that exposes every node output."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional, Union

import numpy as np
import onnx
import onnxruntime as ort

from ...errors import InvalidModelError, ValidationInputError
from ..convert.loader import topological_order
from ..convert.node import node_name


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
    return [OnnxNodeInfo(node_name(n, index), n.op_type, list(n.input), [o for o in n.output if o], n)
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


# ---- ImageType inputs ---------------------------------------------------------------------------

def preprocess_image(pixels: np.ndarray, preprocessing: Mapping) -> np.ndarray:
    """What an ImageType input does to its pixels: scale x pixel + per-channel bias (NCHW)."""
    pixels = np.asarray(pixels, dtype=np.float32)
    bias = np.asarray(preprocessing["bias"], dtype=np.float32).reshape(1, -1, 1, 1)
    return (np.float32(preprocessing["scale"]) * pixels + bias).astype(np.float32)


def image_feeds(feeds: dict, images: Mapping, given, seed: int) -> tuple[dict, dict]:
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
