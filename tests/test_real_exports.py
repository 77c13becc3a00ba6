"""validate() on what users bring: torch.onnx.export output (legacy and dynamo exporters) of
transformers models, committed in tests/real_exports (see its README; no torch needed here).

Both ways, at fp32 and fp16:
- a correct model, whose final outputs agree with onnxruntime (checked here without validate),
  validates OK with no failing row;
- one tampered weight or bias of a Conv / ConvTranspose / MatMul / Gemm / LayerNormalization at a
  seeded random depth is the first divergence (or, when the passes fused its output into the next
  op, the node looked through to reach it), and no row before it fails.
"""
import zlib

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

import onnx2mil
from onnx2mil import models as reference_models
from onnx2mil.backend.convert.config import DEFAULTS
from onnx2mil.backend.validation.reference import run_reference
from real_exports import corpus

EXPORTS = [m["name"] for m in corpus.models()]
REFERENCE = ["bigvgan-tiny", "resnet-tiny", "transformer-tiny"]
PRECISIONS = ["fp32", "fp16"]
FAULTY_OPS = {"Conv", "ConvTranspose", "MatMul", "Gemm", "LayerNormalization"}


def load(name: str):
    if name in REFERENCE:
        return reference_models.build(name), reference_models.example_inputs(name)
    return onnx.load(str(corpus.path(name))), corpus.make_feeds(name)


def rel_err(got: np.ndarray, ref: np.ndarray) -> float:
    scale = float(np.abs(ref).max()) or 1.0
    return float(np.abs(got.astype(np.float64) - ref).max()) / scale


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("name", EXPORTS + REFERENCE)
def test_correct_model_validates_ok(name, precision):
    model, feeds = load(name)
    mlmodel = onnx2mil.build_coreml(model, compute_precision=precision)
    reference = run_reference(model, feeds)
    outputs = onnx2mil.predict(mlmodel, feeds)
    tolerance = DEFAULTS["tolerances"][precision]["rel_to_max"]
    for out in model.graph.output:
        assert rel_err(outputs[out.name], reference[out.name]) <= tolerance, out.name
    report = onnx2mil.validate(model, mlmodel, inputs=feeds)
    failing = [f"{layer.node} ({layer.op_type}): {layer.reason}" for layer in report.layers if layer.status == "fail"]
    assert failing == [] and report.ok, report.summary()
    computed = len(report.layers) - report.counts.get("folded", 0)
    assert report.counts.get("pass", 0) >= computed // 2  # most computed tensors are observed


def tamper(model: onnx.ModelProto, name: str) -> tuple[onnx.ModelProto, str]:
    """A copy with one weight or bias changed (x 1.3 + 0.1 max|w|), and the node it feeds.
    The initializer feeds exactly one node, of a FAULTY_OPS type, chosen at a seeded depth."""
    uses: dict = {}
    for node in model.graph.node:
        for i in node.input:
            uses.setdefault(i, []).append(node)
    initializers = {t.name: t for t in model.graph.initializer}
    candidates = [(node, i) for node in model.graph.node if node.op_type in FAULTY_OPS
                  for i in node.input[1:] if i in initializers and len(uses[i]) == 1
                  and numpy_helper.to_array(initializers[i]).dtype == np.float32]
    assert candidates, f"{name}: no weight to tamper with"
    node, weight = candidates[np.random.default_rng(zlib.crc32(name.encode())).integers(len(candidates))]
    faulty = onnx.ModelProto()
    faulty.CopyFrom(model)
    for t in faulty.graph.initializer:
        if t.name == weight:
            value = numpy_helper.to_array(t)
            t.CopyFrom(numpy_helper.from_array(value * 1.3 + 0.1 * np.abs(value).max(), weight))
    return faulty, node.name


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("name", EXPORTS + REFERENCE)
def test_tampered_weight_is_the_first_divergence(name, precision):
    model, feeds = load(name)
    faulty, target = tamper(model, name)
    report = onnx2mil.validate(model, onnx2mil.build_coreml(faulty, compute_precision=precision), inputs=feeds)
    assert not report.ok
    d = report.first_divergence
    assert d is not None, report.summary()
    target_row = next(layer for layer in report.layers if layer.node == target)
    if target_row.status in ("pass", "fail"):
        assert d.node == target, report.summary()
    else:  # fused into the op that computes the next observed tensor
        assert target in d.looked_through, (target_row.status, report.summary())
    assert all(layer.status != "fail" for layer in report.layers if layer.index < d.layer.index)
