"""The committed corpus is what its manifest says: every file there, valid ONNX at the stated opset,
inputs as declared, seeded feeds within range, onnxruntime runs it to finite outputs of the
declared shapes. (No torch: the export itself is checked by export.py.)"""
import numpy as np
import onnx
import onnxruntime as ort
import pytest

from real_exports import corpus

MODELS = corpus.models()


def test_manifest_covers_what_issue_9_asks():
    tags = {t for m in MODELS for t in m["covers"]}
    assert {"attention", "layernorm", "groupnorm", "convtranspose1d", "snake", "depthwise", "layer_scale",
            "detection"} <= tags
    attention = {m["exporter"] for m in MODELS if "attention" in m["covers"]}
    assert attention == {"legacy", "dynamo"}
    assert sum(m["bytes"] for m in MODELS) <= 25 * 1024 * 1024


@pytest.mark.parametrize("model", MODELS, ids=[m["name"] for m in MODELS])
def test_model_matches_manifest(model):
    path = corpus.path(model)
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto)
    assert path.stat().st_size == model["bytes"]
    assert {o.domain or "ai.onnx": o.version for o in proto.opset_import}["ai.onnx"] == model["opset"]
    assert not any(t.data_location == onnx.TensorProto.EXTERNAL for t in proto.graph.initializer)

    feeds = corpus.make_feeds(model)
    declared = {i["name"]: i for i in model["inputs"]}
    graph_inputs = {vi.name: vi for vi in proto.graph.input}
    assert set(feeds) == set(declared) == set(graph_inputs)
    for name, value in feeds.items():
        spec = declared[name]
        dims = [d.dim_value for d in graph_inputs[name].type.tensor_type.shape.dim]
        assert list(value.shape) == spec["shape"] == dims
        assert value.dtype == np.dtype(spec["dtype"])
        if spec.get("kind") == "ones":
            assert np.all(value == 1)
        else:
            lo, hi = spec["range"]
            assert value.min() >= lo and value.max() < hi
    np.testing.assert_array_equal(feeds[next(iter(feeds))], corpus.make_feeds(model)[next(iter(feeds))])

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    outputs = dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds)))
    assert list(outputs) == [o["name"] for o in model["outputs"]]
    for out in model["outputs"]:
        value = outputs[out["name"]]
        assert np.all(np.isfinite(value)), out["name"]
        assert all(d is None or isinstance(d, str) or d == s for d, s in zip(out["shape"], value.shape))
