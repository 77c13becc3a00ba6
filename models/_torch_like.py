"""A small graph writer that names things the way ``torch.onnx.export`` does.

Nodes are ``/<module path>/<Op>`` (``_1``, ``_2``... for repeats in the same module), their outputs
``<node name>_output_<i>``, parameters keep their state-dict names, scalars and shape vectors are
``Constant`` nodes in the module that uses them.
"""
from __future__ import annotations

from typing import Optional, Sequence, Union

import numpy as np
import onnx
import onnx.helper as oh
from onnx import numpy_helper

OPSET = 17
# ONNX IR version of torch 2.x exports at opset 17; onnxruntime reads it everywhere.
IR_VERSION = 8


class TorchLikeGraph:
    """Collects nodes, initializers and I/O for one model; ``model()`` returns the ModelProto."""

    def __init__(self, name: str, seed: int = 0):
        self.name = name
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.inputs: list[onnx.ValueInfoProto] = []
        self.outputs: list[onnx.ValueInfoProto] = []
        self._taken: dict[str, int] = {}
        self._anonymous = 0

    def input(self, name: str, shape: Sequence[int], dtype=np.float32) -> str:
        self.inputs.append(oh.make_tensor_value_info(name, oh.np_dtype_to_tensor_dtype(np.dtype(dtype)), list(shape)))
        return name

    def output(self, name: str, shape: Sequence[int], dtype=np.float32) -> None:
        self.outputs.append(oh.make_tensor_value_info(name, oh.np_dtype_to_tensor_dtype(np.dtype(dtype)), list(shape)))

    def param(self, name: str, value: np.ndarray) -> str:
        """An initializer under its state-dict name (float32)."""
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(value, dtype=np.float32), name))
        return name

    def folded(self, op_type: str, value: np.ndarray) -> str:
        """A tensor torch's constant folding turned into an initializer: ``onnx::<Op>_<n>``."""
        self._anonymous += 1
        name = f"onnx::{op_type}_{self._anonymous}"
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def uniform(self, shape: Sequence[int], bound: float) -> np.ndarray:
        return self.rng.uniform(-bound, bound, size=tuple(shape)).astype(np.float32)

    def _node_name(self, scope: str, op_type: str) -> str:
        base = f"{scope}/{op_type}"
        n = self._taken.get(base, 0)
        self._taken[base] = n + 1
        return base if n == 0 else f"{base}_{n}"

    def op(self, scope: str, op_type: str, inputs: Sequence[str], *, n_outputs: int = 1,
           outputs: Optional[Sequence[str]] = None, **attrs) -> Union[str, list[str]]:
        """Append one node; returns its output name (or names when ``n_outputs`` > 1)."""
        name = self._node_name(scope, op_type)
        outs = list(outputs) if outputs is not None else [f"{name}_output_{i}" for i in range(n_outputs)]
        self.nodes.append(oh.make_node(op_type, list(inputs), outs, name=name, **attrs))
        return outs[0] if len(outs) == 1 else outs

    def const(self, scope: str, value, dtype=np.float32) -> str:
        """A ``Constant`` node holding ``value`` (a scalar or a small vector such as pads)."""
        array = np.asarray(value, dtype=dtype)
        return self.op(scope, "Constant", [], value=numpy_helper.from_array(array))

    def model(self, doc: str = "") -> onnx.ModelProto:
        graph = oh.make_graph(self.nodes, self.name, self.inputs, self.outputs, self.initializers)
        model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", OPSET)],
                              producer_name="onnx2mil.models", ir_version=IR_VERSION)
        model.doc_string = doc
        return model


def state_dict_prefix(scope: str) -> str:
    """The state-dict prefix of the module at an export scope. A ModuleList child's scope repeats
    its parent's name, which the state dict does not: '/layer2/layer2.0/downsample/downsample.0'
    -> 'layer2.0.downsample.0', '/ups.1/ups.1.0' -> 'ups.1.0'."""
    parts = scope.strip("/").split("/")
    return ".".join(p for p, nxt in zip(parts, parts[1:] + [""]) if not nxt.startswith(p + "."))


def initializer_elements(model: onnx.ModelProto, exclude_suffix: tuple[str, ...] = ()) -> int:
    """Elements in the model's initializers, leaving out those whose name ends with
    ``exclude_suffix`` (e.g. non-persistent buffers that are not parameters)."""
    return sum(int(np.prod(t.dims, dtype=np.int64)) for t in model.graph.initializer
               if not (exclude_suffix and t.name.endswith(exclude_suffix)))
