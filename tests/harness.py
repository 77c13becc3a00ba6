"""Single-node ONNX graphs for builder tests, with onnxruntime as the reference."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import onnx
import onnx.helper as oh
import onnxruntime as ort
from onnx import numpy_helper


@dataclass
class OpCase:
    """One ONNX node on given inputs. ``inputs`` become graph inputs, ``weights`` initializers."""

    id: str
    op_type: str
    inputs: dict[str, np.ndarray]
    attrs: dict = field(default_factory=dict)
    weights: dict[str, np.ndarray] = field(default_factory=dict)
    input_order: Optional[list[str]] = None  # node input names in order ("" = omitted optional)
    n_outputs: int = 1
    opset: int = 17
    domain: str = ""
    config: Optional[dict] = None          # onnx2mil build config (e.g. a lowering variant)
    target: object = None                  # minimum_deployment_target (None: onnx2mil's default)
    fp16: bool = True                      # also compare an fp16 build (float outputs only)

    def model(self) -> onnx.ModelProto:
        order = self.input_order or list(self.inputs) + list(self.weights)
        outs = [f"out{i}" for i in range(self.n_outputs)]
        node = oh.make_node(self.op_type, order, outs, name=f"{self.op_type.lower()}_node",
                            domain=self.domain or None, **self.attrs)
        graph = oh.make_graph(
            [node], self.id,
            [oh.make_tensor_value_info(k, oh.np_dtype_to_tensor_dtype(v.dtype), v.shape)
             for k, v in self.inputs.items()],
            [oh.make_empty_tensor_value_info(o) for o in outs],
            [numpy_helper.from_array(v, k) for k, v in self.weights.items()])
        model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", self.opset)])
        return onnx.shape_inference.infer_shapes(model)


def run_ort(model: onnx.ModelProto, feeds: dict) -> dict[str, np.ndarray]:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(names, feeds)))


def rand(*shape, seed=0, dtype=np.float32, low=-1.0, high=1.0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(low, high, size=shape).astype(dtype)
