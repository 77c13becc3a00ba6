"""validate(): every layer against onnxruntime; faults injected into a copy of the model must be
found at exactly the injected node, with everything before it passing."""
import json
import sys

import numpy as np
import onnx
import onnx.helper as oh
import pytest
from onnx import numpy_helper

import onnx2mil
from onnx2mil.backend.convert.config import DEFAULTS, Config
from onnx2mil.backend.validation.compare import compare
from onnx2mil.backend.validation.reference import make_inputs
from onnx2mil.errors import ValidationInputError
from harness import run_ort

CONFIGS = __import__("pathlib").Path(__file__).resolve().parents[1] / "configs"


def small_net(faults: dict = None, time_dim=24) -> onnx.ModelProto:
    """Conv -> ConvTranspose -> Conv(no bias) + folded bias (fused into the conv by the passes)
    -> Conv. ``faults``: {initializer name: value added to it}."""
    rng = np.random.default_rng(0)
    weights = {
        "w0": rng.standard_normal((8, 4, 3)) * 0.3, "b0": rng.standard_normal(8),
        "w1": rng.standard_normal((8, 6, 4)) * 0.3, "b1": rng.uniform(0.5, 1.5, 6),
        "w2": rng.standard_normal((6, 6, 3)) * 0.3, "ba": rng.standard_normal((1, 6, 1)),
        "bb": np.full((1, 6, 1), 0.5), "w3": rng.standard_normal((2, 6, 3)) * 0.3, "b3": rng.standard_normal(2),
    }
    for name, delta in (faults or {}).items():
        weights[name] = weights[name] + delta
    inits = [numpy_helper.from_array(v.astype(np.float32), k) for k, v in weights.items()]
    nodes = [
        oh.make_node("Conv", ["x", "w0", "b0"], ["c0"], name="conv0", pads=[1, 1]),
        oh.make_node("ConvTranspose", ["c0", "w1", "b1"], ["up"], name="up", strides=[2], pads=[1, 1]),
        oh.make_node("Conv", ["up", "w2"], ["c2"], name="conv2", pads=[1, 1]),
        oh.make_node("Mul", ["ba", "bb"], ["bias2"], name="bias2"),
        oh.make_node("Add", ["c2", "bias2"], ["biased"], name="add_bias"),
        oh.make_node("Conv", ["biased", "w3", "b3"], ["y"], name="conv_out", pads=[1, 1]),
    ]
    out_len = 2 * time_dim if isinstance(time_dim, int) else "T2"
    graph = oh.make_graph(nodes, "small_net", [oh.make_tensor_value_info("x", 1, [1, 4, time_dim])],
                          [oh.make_tensor_value_info("y", 1, [1, 2, out_len])], inits)
    return oh.make_model(graph, opset_imports=[oh.make_opsetid("", 17)])


def statuses(report):
    return {layer.tensor: layer.status for layer in report.layers}


@pytest.mark.parametrize("precision", ["fp16", "fp32"])
def test_clean_model_passes_every_layer(precision):
    report = onnx2mil.validate(small_net(), compute_precision=precision)
    assert report.ok and report.first_divergence is None
    assert report.precision == precision and report.method == "capture"
    assert report.tolerances == DEFAULTS["tolerances"][precision]
    assert statuses(report) == {"c0": "pass", "up": "pass", "c2": "fused", "bias2": "folded",
                                "biased": "pass", "y": "pass"}
    assert [layer.node for layer in report.layers] == ["conv0", "up", "conv2", "bias2", "add_bias", "conv_out"]
    for layer in report.layers:
        if layer.status == "pass":
            assert layer.rel_to_max <= report.tolerances["rel_to_max"]
            assert layer.cosine >= report.tolerances["min_cosine"]
            assert layer.mil_var is not None and layer.shape is not None


def test_injected_conv_transpose_bias_is_the_first_divergence():
    mlmodel = onnx2mil.build_coreml(small_net({"b1": np.array([0, 0.4, 0, 0, 0, 0])}))
    report = onnx2mil.validate(small_net(), mlmodel)
    assert not report.ok
    d = report.first_divergence
    assert (d.node, d.op_type, d.tensor) == ("up", "ConvTranspose", "up")
    assert d.metrics["rel_to_max"] > 0.01 and d.looked_through == []
    assert statuses(report)["c0"] == "pass"
    # downstream ops are right on right inputs: not blamed, but the error reaches the output
    assert statuses(report)["y"] == "pass" and report.layer("y").drift
    assert [layer.tensor for layer in report.drifting_outputs] == ["y"]


def test_divergence_behind_a_fused_tensor_names_the_nodes_looked_through():
    """conv2's output is fused into the bias add: the fault shows at add_bias, whose compared
    input (up) passes, and conv2 is named as looked through."""
    report = onnx2mil.validate(small_net(), source=small_net({"w2": 0.2}))
    d = report.first_divergence
    assert (d.node, d.tensor) == ("add_bias", "biased")
    assert d.looked_through == ["conv2"]
    assert statuses(report)["up"] == "pass" and statuses(report)["c2"] == "fused"


def test_truncation_bisection_finds_the_same_node_with_few_builds():
    report = onnx2mil.validate(small_net(), method="truncation", source=small_net({"b1": 0.3}))
    assert report.method == "truncation" and not report.ok
    assert (report.first_divergence.node, report.first_divergence.tensor) == ("up", "up")
    assert statuses(report)["c0"] == "pass"
    assert any("truncation bisection" in n for n in report.notes)


def test_outputs_method_compares_fused_tensors_too():
    report = onnx2mil.validate(small_net(), method="outputs", source=small_net({"w2": 0.2}))
    assert report.method == "outputs"
    assert statuses(report)["c2"] == "fail"   # exposed as an output, so observable
    assert report.first_divergence.node == "conv2"


def test_coreml_runtime_off_macos_is_a_clear_error():
    if sys.platform == "darwin":
        pytest.skip("CoreML is available on macOS: the off-macOS error does not apply")
    with pytest.raises(onnx2mil.RuntimeUnavailableError, match="macOS"):
        onnx2mil.validate(small_net(), runtime="coreml")


@pytest.mark.macos
def test_coreml_runtime_finds_the_injected_node():
    if sys.platform != "darwin":
        pytest.skip("RuntimeUnavailableError: CoreML runs on macOS only")
    report = onnx2mil.validate(small_net(), runtime="coreml", method="truncation",
                               source=small_net({"b1": 0.3}))
    assert report.first_divergence.node == "up"


def test_symbolic_dims_need_explicit_shapes():
    model = small_net(time_dim="T")
    with pytest.raises(ValidationInputError, match="symbolic dims"):
        onnx2mil.validate(model)
    report = onnx2mil.validate(model, inputs={"x": (1, 4, 10)})
    assert report.ok and report.layer("y").shape == [1, 2, 20]


def test_inputs_from_npz_match_onnxruntime_on_the_same_values(tmp_path):
    x = np.random.default_rng(3).standard_normal((1, 4, 24)).astype(np.float32)
    np.savez(tmp_path / "in.npz", x=x)
    report = onnx2mil.validate(small_net(), inputs=tmp_path / "in.npz", compute_precision="fp32")
    assert report.ok
    expected = run_ort(small_net(), {"x": x})["y"]
    assert report.layer("y").max_abs_ref == pytest.approx(float(np.abs(expected).max()), rel=1e-6)


def test_bad_inputs_are_refused_with_the_reason():
    with pytest.raises(ValidationInputError, match="not inputs of the model"):
        make_inputs(small_net(), {"nope": np.zeros(3)})
    with pytest.raises(ValidationInputError, match="shape"):
        make_inputs(small_net(), {"x": np.zeros((1, 4, 5), np.float32)})


def test_generated_inputs_are_seeded_and_in_range():
    a = make_inputs(small_net(), seed=7)["x"]
    assert np.array_equal(a, make_inputs(small_net(), seed=7)["x"])
    assert a.dtype == np.float32 and a.shape == (1, 4, 24) and np.abs(a).max() <= 1.0


def test_metrics_on_hand_computed_values():
    tol = DEFAULTS["tolerances"]["fp16"]
    ref = np.array([3.0, -4.0, 0.0], np.float32)
    m = compare(ref, np.array([3.0, -4.0, 0.1], np.float32), tol)
    assert m["max_abs_err"] == pytest.approx(0.1) and m["max_abs_ref"] == 4.0
    assert m["rel_to_max"] == pytest.approx(0.025) and m["status"] == "fail"
    assert m["cosine"] == pytest.approx(25 / (5 * np.sqrt(25.01)))
    assert m["snr_db"] == pytest.approx(10 * np.log10(25 / 0.01), rel=1e-5)
    exact = compare(ref, ref.copy(), tol)
    assert exact["status"] == "pass" and exact["snr_db"] is None and exact["cosine"] == pytest.approx(1.0)
    ints = compare(np.array([1, 2], np.int64), np.array([1, 3], np.int32), tol)
    assert ints["status"] == "fail" and "exact" in ints["reason"]
    assert compare(np.zeros(4), np.zeros(4), tol)["status"] == "pass"
    assert compare(np.ones((2, 3)), np.ones(5), tol)["status"] == "fail"


def test_report_json_is_strict_json():
    report = onnx2mil.validate(small_net(), source=small_net({"b1": 0.3}))
    data = json.loads(report.to_json(), parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
    assert data["ok"] is False and data["first_divergence"]["node"] == "up"
    assert [row["tensor"] for row in data["layers"]] == ["c0", "up", "c2", "bias2", "biased", "y"]
    assert data["counts"]["fail"] >= 1


def test_tolerances_come_from_the_config():
    loose = {"tolerances": {"fp16": {"rel_to_max": 1.0, "min_cosine": 0.0}}}
    report = onnx2mil.validate(small_net(), source=small_net({"b1": 0.3}), config=loose)
    assert report.ok and report.tolerances == loose["tolerances"]["fp16"]


def test_saved_package_brings_its_config_and_precision(tmp_path):
    strict = {"tolerances": {"fp32": {"rel_to_max": 1e-6, "min_cosine": 0.9999999}}}
    path = onnx2mil.save(onnx2mil.build_coreml(small_net(), compute_precision="fp32", config=strict),
                         tmp_path / "m.mlpackage")
    report = onnx2mil.validate(small_net(), str(path))
    assert report.precision == "fp32" and report.tolerances == strict["tolerances"]["fp32"]
    with pytest.raises(ValidationInputError, match="the given model is fp32"):
        onnx2mil.validate(small_net(), str(path), compute_precision="fp16")


def test_default_config_file_equals_code_defaults():
    import yaml

    assert yaml.safe_load((CONFIGS / "default.yaml").read_text()) == DEFAULTS


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_every_config_preset_loads(path):
    cfg = Config.load(path)
    assert set(cfg.data) >= set(DEFAULTS)


def test_preset_lowerings_are_what_the_names_say():
    assert Config.load(CONFIGS / "convtranspose1d-native.yaml").lowering("conv_transpose_1d") == "native"
    assert Config.load(CONFIGS / "convtranspose1d-split-bias.yaml").lowering("conv_transpose_1d") == "split_bias"
    strict = Config.load(CONFIGS / "strict-fp32.yaml").tolerance("fp32")
    assert strict["rel_to_max"] < DEFAULTS["tolerances"]["fp32"]["rel_to_max"]


# ---- fault injection into the BigVGAN tiny reference model ----------------------------------------

BIGVGAN = "bigvgan-tiny"


def with_changed_initializer(model: onnx.ModelProto, name: str, delta: float) -> onnx.ModelProto:
    """A copy of ``model`` whose initializer ``name`` has ``delta`` added to its first element."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    for t in out.graph.initializer:
        if t.name == name:
            value = numpy_helper.to_array(t).copy()
            value.reshape(-1)[0] += delta
            t.CopyFrom(numpy_helper.from_array(value, name))
            return out
    raise KeyError(name)


@pytest.fixture(scope="module")
def bigvgan():
    from onnx2mil import models

    return models.build(BIGVGAN), models.example_inputs(BIGVGAN)


@pytest.mark.parametrize("node,initializer", [
    ("/ups.1/ups.1.0/ConvTranspose", "ups.1.0.bias"),        # an upsampling ConvTranspose's bias
    ("/resblocks.5/convs2.1/Conv", "resblocks.5.convs2.1.bias"),  # a Conv in the last AMP block
])
def test_bigvgan_fault_is_found_at_exactly_the_injected_node(bigvgan, node, initializer):
    model, inputs = bigvgan
    faulty = onnx2mil.build_coreml(with_changed_initializer(model, initializer, 2.0))
    report = onnx2mil.validate(model, faulty, inputs=inputs)
    assert not report.ok
    d = report.first_divergence
    assert d.node == node, report.summary()
    before = [layer for layer in report.layers if layer.index < d.layer.index]
    assert before and all(layer.status in ("pass", "fused", "folded") for layer in before)
    assert sum(layer.status == "pass" for layer in before) >= 10


def test_outputs_method_and_cuts_work_on_linear_layers():
    """MatMul + Add fuse into linear: exposing the MatMul output must not crash the passes."""
    from onnx2mil import models

    model, inputs = models.build("transformer-tiny"), models.example_inputs("transformer-tiny")
    matmul = next(n for n in model.graph.node if n.op_type == "MatMul").output[0]
    cut = onnx2mil.build_coreml(model, outputs=[matmul, model.graph.output[0].name], compute_precision="fp32")
    from onnx2mil.backend.validation.reference import run_reference

    expected = run_reference(model, inputs)[matmul]
    got = onnx2mil.predict(cut, inputs)[matmul]
    assert np.abs(got - expected).max() <= 1e-5 * np.abs(expected).max()
    report = onnx2mil.validate(model, method="outputs", inputs=inputs)
    assert report.ok and report.counts.get("fail", 0) == 0 and report.layer(matmul).status == "pass"


def test_fused_tensors_name_the_pass_that_fused_them():
    from onnx2mil import models

    report = onnx2mil.validate(models.build("resnet-tiny"), inputs=models.example_inputs("resnet-tiny"))
    fused = [layer for layer in report.layers if layer.status == "fused"]
    assert fused and all(layer.op_type == "Conv" and "fuse_conv_batchnorm" in layer.reason for layer in fused)


def test_emulated_neural_engine_finds_the_seed_bug_and_notes_the_rewrites():
    """The story on Linux: with the native rank-3 ConvTranspose1d lowering, the emulated Neural
    Engine (bias on the first elements only) diverges at an ups ConvTranspose; the default as_2d
    lowering validates OK there, and the report says which hazards the build avoided."""
    from onnx2mil import models

    model, inputs = models.build(BIGVGAN), models.example_inputs(BIGVGAN)
    native = onnx2mil.validate(model, inputs=inputs, runtime="mil-ane",
                               config={"lowering": {"conv_transpose_1d": "native"}})
    d = native.first_divergence
    assert d is not None and d.op_type == "ConvTranspose" and d.node.startswith("/ups."), native.summary()
    default = onnx2mil.validate(model, inputs=inputs, runtime="mil-ane")
    assert default.ok, default.summary()
    assert any("EMULATION" in note for note in default.notes)
    assert any(note.startswith("hazard avoided: conv_transpose_1d_bias") for note in default.notes)
    assert not any(note.startswith("hazard avoided: conv_transpose_1d_bias") for note in native.notes)
