"""``onnx2mil lint``: every known CoreML / Neural Engine hazard (backend/convert/hazards.py) is found on a
small ONNX model that triggers it, named by its node; where onnx2mil has a rewrite, the default
build lints clean and validates against onnxruntime at fp32 and fp16. The correct real exports and
reference models lint clean."""
import json

import coremltools as ct
import numpy as np
import onnx
import onnx.helper as oh
import pytest
from coremltools.converters.mil import Builder as mb
from onnx import numpy_helper

import onnx2mil
from onnx2mil.backend.convert import hazards
from onnx2mil.backend.convert.pipeline import load_saved_program, pass_pipeline
from onnx2mil.backend.convert.config import Config
from onnx2mil.cli import main
from real_exports import corpus

NATIVE = {"lowering": {"conv_transpose_1d": "native"}}
F = onnx.TensorProto.FLOAT


def model(nodes, inputs, outputs, weights=None, opset=17):
    """An ONNX model from nodes, {input: shape}, [output] and {initializer: array}."""
    graph = oh.make_graph(
        nodes, "lint_case", [oh.make_tensor_value_info(k, F, v) for k, v in inputs.items()],
        [oh.make_empty_tensor_value_info(o) for o in outputs],
        [numpy_helper.from_array(v, k) for k, v in (weights or {}).items()])
    return onnx.shape_inference.infer_shapes(oh.make_model(graph, opset_imports=[oh.make_opsetid("", opset)]))


def w(*shape, seed=0, scale=0.5):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)


def conv_transpose_1d(bias=True, **attrs):
    inputs = ["x", "w"] + (["b"] if bias else [])
    weights = {"w": w(4, 3, 4), **({"b": w(3, seed=1) + 0.5} if bias else {})}
    return model([oh.make_node("ConvTranspose", inputs, ["y"], name="up", **attrs)], {"x": [1, 4, 16]}, ["y"],
                 weights)


def findings(report, hazard):
    return [(f.node, f.op_type, f.mitigated) for f in report.findings if f.hazard == hazard]


def assert_validates(onnx_model):
    for precision in ("fp32", "fp16"):
        report = onnx2mil.validate(onnx_model, compute_precision=precision)
        assert report.ok, report.summary()


# ---- hazard 1: rank-3 conv_transpose with bias on the ANE ---------------------------------------

def test_rank3_conv_transpose_bias_is_found_with_native_and_mitigated_by_default():
    m = conv_transpose_1d(strides=[2], pads=[1, 1])
    report = onnx2mil.lint(m, config=NATIVE)
    assert findings(report, "conv_transpose_1d_bias") == [("up", "ConvTranspose", False)]
    assert not report.clean
    default = onnx2mil.lint(m)
    assert findings(default, "conv_transpose_1d_bias") == [("up", "ConvTranspose", True)]
    assert default.clean, default.summary()
    assert next(f for f in default.findings if f.hazard == "conv_transpose_1d_bias").rewrite == \
        "lowering.conv_transpose_1d=as_2d"
    assert_validates(m)


def test_split_bias_also_mitigates_and_a_zero_bias_is_no_hazard():
    m = conv_transpose_1d(strides=[2], pads=[1, 1])
    assert onnx2mil.lint(m, config={"lowering": {"conv_transpose_1d": "split_bias"}}).clean
    no_bias = conv_transpose_1d(bias=False, strides=[2], pads=[1, 1])
    assert onnx2mil.lint(no_bias, config=NATIVE).findings == []


def test_per_node_override_is_linted_per_node():
    m = conv_transpose_1d(strides=[2], pads=[1, 1])
    report = onnx2mil.lint(m, config={"node_lowering": {"up": {"conv_transpose_1d": "native"}}})
    assert findings(report, "conv_transpose_1d_bias") == [("up", "ConvTranspose", False)]


def test_bigvgan_native_lints_hazard_1_on_every_ups_node_and_default_is_clean():
    from onnx2mil import models

    bigvgan = models.build("bigvgan-tiny")
    ups = sorted(n.name for n in bigvgan.graph.node if n.op_type == "ConvTranspose" and n.name.startswith("/ups."))
    assert len(ups) == 3
    native = onnx2mil.lint(bigvgan, config=NATIVE)
    assert sorted(f.node for f in native.unmitigated if f.hazard == "conv_transpose_1d_bias") == ups
    assert {f.hazard for f in native.unmitigated} == {"conv_transpose_1d_bias"}
    default = onnx2mil.lint(bigvgan)
    assert default.clean, default.summary()
    assert sorted(f.node for f in default.findings if f.hazard == "conv_transpose_1d_bias") == ups


# ---- hazard 2: conv_transpose with output_shape --------------------------------------------------

def test_output_shape_is_rewritten_to_explicit_pads_and_the_pattern_finds_it_where_coremltools_adds_it():
    m = conv_transpose_1d(strides=[2], output_shape=[32])
    report = onnx2mil.lint(m)
    assert findings(report, "conv_transpose_output_shape") == [("up", "ConvTranspose", True)]
    assert report.clean, report.summary()
    assert_validates(m)

    # coremltools' default pipeline (add_conv_transpose_output_shape) gives the op an output_shape
    def convert(pipeline):
        @mb.program(input_specs=[mb.TensorSpec(shape=(1, 4, 8, 8))], opset_version=ct.target.iOS15)
        def prog(x):
            return mb.conv_transpose(x=x, weight=w(4, 3, 3, 3), strides=[2, 2], pad_type="valid")

        mlmodel = ct.convert(prog, convert_to="mlprogram", minimum_deployment_target=ct.target.iOS15,
                             pass_pipeline=pipeline)
        return load_saved_program(mlmodel)

    hazard = hazards.BY_KEY["conv_transpose_output_shape"]
    assert [op.op_type for op in hazard.mil_pattern(convert(ct.PassPipeline.DEFAULT))] == ["conv_transpose"]
    assert hazard.mil_pattern(convert(pass_pipeline(Config()))) == []


# ---- hazards 3 and 4: asymmetric pads; 1-D fp16 strided shift -------------------------------------

def test_asymmetric_conv_transpose_pads_and_output_padding_are_unmitigated():
    def up2d(**attrs):
        return model([oh.make_node("ConvTranspose", ["x", "w"], ["y"], name="up2d", strides=[2, 2], **attrs)],
                     {"x": [1, 4, 6, 6]}, ["y"], {"w": w(4, 2, 3, 3)})

    # output_padding folds into the end pad: [1, 1] pads become [1, 0]
    for attrs in ({"pads": [0, 0, 1, 1]}, {"pads": [1, 1, 1, 1], "output_padding": [1, 1]}):
        report = onnx2mil.lint(up2d(**attrs))
        assert findings(report, "conv_transpose_asymmetric_pads") == [("up2d", "ConvTranspose", False)], attrs
        assert not report.clean
    # output_padding past the full output is emitted as a separate pad: the conv_transpose stays symmetric
    beyond = onnx2mil.lint(up2d(output_padding=[1, 1]))
    assert findings(beyond, "conv_transpose_asymmetric_pads") == [("up2d", "ConvTranspose", True)]
    assert beyond.clean
    assert_validates(up2d(output_padding=[1, 1]))


def test_rank3_fp16_strided_asymmetric_conv_transpose_is_found_with_native_only():
    m = conv_transpose_1d(bias=False, strides=[2], pads=[1, 0])
    native = onnx2mil.lint(m, config=NATIVE)
    assert findings(native, "conv_transpose_1d_fp16_shift") == [("up", "ConvTranspose", False)]
    assert findings(onnx2mil.lint(m, config=NATIVE, compute_precision="fp32"), "conv_transpose_1d_fp16_shift") \
        == [("up", "ConvTranspose", True)]  # the report is on fp16: the fp32 op is not its form
    default = onnx2mil.lint(m)
    assert findings(default, "conv_transpose_1d_fp16_shift") == [("up", "ConvTranspose", True)]
    assert findings(default, "conv_transpose_asymmetric_pads") == [("up", "ConvTranspose", False)]
    assert_validates(m)


# ---- hazard 6: conv2d last element ---------------------------------------------------------------

def test_conv2d_in_the_reported_geometry_is_found():
    m = model([oh.make_node("Conv", ["x", "w"], ["y"], name="conv", kernel_shape=[3, 2], pads=[1, 1, 1, 1],
                            strides=[2, 2])], {"x": [1, 2, 5, 5]}, ["y"], {"w": w(2, 2, 3, 2)})
    assert findings(onnx2mil.lint(m), "conv2d_last_element") == [("conv", "Conv", False)]
    square = model([oh.make_node("Conv", ["x", "w"], ["y"], name="conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1],
                                 strides=[2, 2])], {"x": [1, 2, 5, 5]}, ["y"], {"w": w(2, 2, 3, 3)})
    assert onnx2mil.lint(square).findings == []


def test_avg_pool_in_the_reported_geometry():
    def pool(count_include_pad):
        return model([oh.make_node("AveragePool", ["x"], ["y"], name="pool", kernel_shape=[7, 7], strides=[4, 4],
                                   pads=[3, 3, 3, 3], count_include_pad=count_include_pad)], {"x": [1, 2, 32, 32]},
                     ["y"])

    # count_include_pad (the report's setting): the padding is a separate pad op, the pool has none
    included = onnx2mil.lint(pool(1))
    assert findings(included, "avg_pool_7_4_3") == [("pool", "AveragePool", True)]
    assert [f.hazard for f in included.unmitigated] == ["pool_beyond_ne"]  # stride 4 > 2: off the NE
    assert_validates(pool(1))
    assert findings(onnx2mil.lint(pool(0)), "avg_pool_7_4_3") == [("pool", "AveragePool", False)]


# ---- hazard 7: the Neural Engine computes in fp16 ------------------------------------------------

@pytest.mark.parametrize("hazard, nodes, node", [
    ("softplus_fp16", [oh.make_node("Softplus", ["x"], ["y"], name="sp")], "sp"),
    ("softplus_fp16", [oh.make_node("Mish", ["x"], ["y"], name="mish")], "mish"),
    ("logsumexp_fp16", [oh.make_node("ReduceLogSumExp", ["x"], ["y"], name="lse", keepdims=1)], "lse"),
    ("logsumexp_fp16", [oh.make_node("LogSoftmax", ["x"], ["y"], name="lsm", axis=-1)], "lsm"),
    ("log_softmax_fp16", [oh.make_node("Softmax", ["x"], ["p"], name="sm", axis=-1),
                          oh.make_node("Log", ["p"], ["y"], name="log")], "log"),
    ("logcumsumexp_fp16", [oh.make_node("Exp", ["x"], ["e"], name="exp"),
                           oh.make_node("CumSum", ["e", "axis"], ["c"], name="cumsum"),
                           oh.make_node("Log", ["c"], ["y"], name="log")], "log"),
])
def test_fp16_overflow_ops_are_found_by_node(hazard, nodes, node):
    m = model(nodes, {"x": [1, 8, 32]}, ["y"], {"axis": np.array(-1, np.int64)} if hazard == "logcumsumexp_fp16"
              else None, opset=18)
    report = onnx2mil.lint(m, compute_precision="fp32")  # the NE computes in fp16 whatever is declared
    assert (node, False) in [(n, mitigated) for n, _, mitigated in findings(report, hazard)], report.findings
    assert not report.clean


# ---- hazard 10: work the Neural Engine does not take ---------------------------------------------

def test_placement_hazards_are_found():
    pool = model([oh.make_node("AveragePool", ["x"], ["y"], name="pool", kernel_shape=[14, 14])],
                 {"x": [1, 4, 14, 14]}, ["y"])
    assert findings(onnx2mil.lint(pool), "pool_beyond_ne") == [("pool", "AveragePool", False)]
    up3 = model([oh.make_node("Resize", ["x", "", "scales"], ["y"], name="up3", mode="nearest")],
                {"x": [1, 4, 5, 5]}, ["y"], {"scales": np.array([1, 1, 3, 3], np.float32)}, opset=13)
    assert findings(onnx2mil.lint(up3), "upsample_not_2") == [("up3", "Resize", False)]
    up2 = model([oh.make_node("Resize", ["x", "", "scales"], ["y"], name="up2", mode="nearest")],
                {"x": [1, 4, 5, 5]}, ["y"], {"scales": np.array([1, 1, 2, 2], np.float32)}, opset=13)
    assert onnx2mil.lint(up2).findings == []
    long = model([oh.make_node("Relu", ["x"], ["y"], name="relu")], {"x": [1, 2, 20000]}, ["y"])
    assert ("relu", "Relu", False) in findings(onnx2mil.lint(long), "dim_over_16384")


def test_lstm_builds_without_mil_lstm_so_the_hazard_is_avoided():
    hidden, size = 3, 4
    m = model([oh.make_node("LSTM", ["x", "W", "R"], ["y"], name="lstm", hidden_size=hidden)], {"x": [5, 1, size]},
              ["y"], {"W": w(1, 4 * hidden, size), "R": w(1, 4 * hidden, hidden, seed=1)})
    report = onnx2mil.lint(m)
    assert findings(report, "rnn_off_ne") == [("lstm", "LSTM", True)] and report.clean
    assert_validates(m)

    @mb.program(input_specs=[mb.TensorSpec(shape=(5, 1, size))], opset_version=ct.target.iOS15)
    def prog(x):
        return mb.lstm(x=x, initial_h=np.zeros((1, hidden), np.float32), initial_c=np.zeros((1, hidden), np.float32),
                       weight_ih=w(4 * hidden, size), weight_hh=w(4 * hidden, hidden), output_sequence=True)[0]

    assert [op.op_type for op in hazards.BY_KEY["rnn_off_ne"].mil_pattern(prog)] == ["lstm"]


# ---- the table, applied rewrites, packages, the command ------------------------------------------

def test_every_hazard_has_a_reference_a_symptom_and_a_pattern():
    for h in hazards.HAZARDS:
        assert h.symptom and h.references and (h.mil_pattern or h.onnx_pattern or h.range_ops), h.key
        assert all(r.startswith("https://") for r in h.references) or h.references == (hazards.MNN_REPORT,), h.key
        if h.rewrite is not None and h.rewrite.lowering is not None:
            from onnx2mil.backend.convert.config import LOWERINGS
            assert set(h.rewrite.variants) <= set(LOWERINGS[h.rewrite.lowering]), h.key
    assert hazards.BY_KEY["conv_transpose_1d_bias"].default_applied
    assert not hazards.BY_KEY["conv_transpose_asymmetric_pads"].default_applied
    assert not hazards.BY_KEY["norm_fp16_overflow"].default_applied


def test_applied_lists_what_the_stored_config_mitigated(tmp_path):
    m = conv_transpose_1d(strides=[2], pads=[1, 1])
    default = {(a.hazard, a.rewrite, a.scope) for a in hazards.applied(onnx2mil.build_coreml(m))}
    assert ("conv_transpose_1d_bias", "lowering.conv_transpose_1d=as_2d", "model") in default
    assert ("conv_transpose_output_shape", hazards.BY_KEY["conv_transpose_output_shape"].rewrite.description,
            "model") in default
    native = onnx2mil.build_coreml(m, config=NATIVE)
    assert "conv_transpose_1d_bias" not in {a.hazard for a in hazards.applied(native)}
    per_node = onnx2mil.build_coreml(m, config={**NATIVE, "node_lowering": {"up": {"conv_transpose_1d": "as_2d"}}})
    assert ("conv_transpose_1d_bias", "lowering.conv_transpose_1d=as_2d", "up") in \
        {(a.hazard, a.rewrite, a.scope) for a in hazards.applied(per_node)}
    excepted = onnx2mil.build_coreml(m, config={"node_lowering": {"up": {"conv_transpose_1d": "native"}}})
    assert ("conv_transpose_1d_bias", "lowering.conv_transpose_1d=as_2d", "model except up") in \
        {(a.hazard, a.rewrite, a.scope) for a in hazards.applied(excepted)}
    path = onnx2mil.save(per_node, tmp_path / "m.mlpackage")
    assert [a.to_dict() for a in hazards.applied(str(path))] == [a.to_dict() for a in hazards.applied(per_node)]


def test_a_saved_package_lints_like_the_build(tmp_path):
    m = conv_transpose_1d(strides=[2], pads=[1, 1])
    path = onnx2mil.save(onnx2mil.build_coreml(m, config=NATIVE), tmp_path / "native.mlpackage")
    named = onnx2mil.lint(str(path), source=m)
    assert findings(named, "conv_transpose_1d_bias") == [("up", "ConvTranspose", False)]
    bare = onnx2mil.lint(str(path))  # no ONNX model: named by the ONNX tensor it computes
    assert [(f.hazard, f.node) for f in bare.unmitigated] == [("conv_transpose_1d_bias", "y")]
    with pytest.raises(onnx2mil.Onnx2MilError, match="build options"):
        onnx2mil.lint(str(path), compute_precision="fp32")


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_exit_codes_json_and_table(capsys, tmp_path):
    m = conv_transpose_1d(strides=[2], pads=[1, 1])
    onnx.save(m, str(tmp_path / "m.onnx"))
    code, out, _ = run_cli(capsys, "lint", tmp_path / "m.onnx")
    assert code == 0 and "clean" in out and "lowering.conv_transpose_1d=as_2d" in out
    cfg = tmp_path / "native.yaml"
    cfg.write_text("lowering:\n  conv_transpose_1d: native\n")
    code, out, _ = run_cli(capsys, "lint", tmp_path / "m.onnx", "--config", cfg, "--json")
    data = json.loads(out)
    assert code == 1 and not data["clean"] and data["findings"][0]["node"] == "up"
    assert data["findings"][0]["hazard"] == "conv_transpose_1d_bias" and not data["findings"][0]["mitigated"]
    path = onnx2mil.save(onnx2mil.build_coreml(m, config=NATIVE), tmp_path / "native.mlpackage")
    code, out, _ = run_cli(capsys, "lint", path, "--onnx", tmp_path / "m.onnx")
    assert code == 1 and "conv_transpose_1d_bias" in out and "up" in out
    for argv in (["lint", tmp_path / "missing.onnx"], ["lint", path, "--precision", "fp32"],
                 ["lint", tmp_path / "missing.mlpackage"]):
        code, out, err = run_cli(capsys, *argv)
        assert code == 2 and out == "" and len(err.strip().splitlines()) == 1, (argv, err)


# ---- the correct real models lint clean ----------------------------------------------------------

@pytest.mark.parametrize("name", [m["name"] for m in corpus.models()] + ["bigvgan-tiny", "resnet-tiny",
                                                                          "transformer-tiny"])
def test_correct_real_models_lint_clean(name):
    from onnx2mil import models

    source = models.build(name) if name in models.names() else str(corpus.path(name))
    report = onnx2mil.lint(source)
    found = [(f.hazard, f.severity) for f in report.unmitigated]
    if name.startswith("efficientnet"):
        # transformers' EfficientNet pools with AvgPool2d(kernel_size=hidden_dim=320, ceil_mode=True):
        # a real Neural Engine fallback, not a wrong value
        assert found == [("pool_beyond_ne", hazards.FALLBACK)]
    else:
        assert report.clean, found


def test_readme_lists_every_hazard_once():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("## Lint: known CoreML / Neural Engine hazards", 1)[1].split("\n## ", 1)[0]
    rows = [line.split("|")[1].strip().strip("`") for line in section.splitlines() if line.startswith("| `")]
    assert rows == [h.key for h in hazards.HAZARDS]


# ---- the emulated Neural Engine (mil-ane) --------------------------------------------------------

def test_isolate_bigvgan_second_ups_node_native_fails_only_on_the_emulated_neural_engine(tmp_path):
    from onnx2mil import models

    result = onnx2mil.isolate(models.build("bigvgan-tiny"), "/ups.1/ups.1.0/ConvTranspose", tmp_path,
                              inputs=models.example_inputs("bigvgan-tiny"),
                              runtimes=["mil-fp32", "mil-fp16", "mil-ane"])
    assert result.cell("native", "mil-ane").status == "fail"
    assert result.cell("as_2d", "mil-ane").status == "pass"
    assert result.cell("split_bias", "mil-ane").status == "pass"
    assert all(result.cell(v, r).status == "pass" for v in result.variants for r in ("mil-fp32", "mil-fp16"))
    assert result.failing_variants() == ["native"]
    assert "mil-ane (emulation)" in (tmp_path / "README.md").read_text()


def test_emulated_neural_engine_computes_in_fp16_whatever_the_declared_precision():
    square = model([oh.make_node("Mul", ["x", "x"], ["y"], name="square")], {"x": [1, 4]}, ["y"])
    x = np.array([[1.0, 3.0, 300.0, 1e-3 + 1e-7]], np.float32)  # 300^2 = 90000 > 65504
    fp32 = onnx2mil.build_coreml(square, compute_precision="fp32")
    exact = onnx2mil.predict(fp32, {"x": x})["y"]
    emulated = onnx2mil.predict(fp32, {"x": x}, runtime="mil-ane")["y"]
    assert exact.dtype == emulated.dtype == np.float32
    np.testing.assert_allclose(exact, x * x, rtol=1e-6)
    assert np.isinf(emulated[0, 2]) and not np.isinf(exact[0, 2])
    fp16_x = x.astype(np.float16).astype(np.float32)
    np.testing.assert_array_equal(emulated[0, :2], (fp16_x[0, :2] * fp16_x[0, :2]).astype(np.float16))
    assert emulated[0, 3] == np.float32(np.float16(np.float16(x[0, 3]) ** 2))


def test_emulated_bias_hazard_hits_only_rank3_conv_transpose_with_a_bias():
    from onnx2mil.backend.runtime import ane_emulation
    from harness import run_ort

    m = conv_transpose_1d(strides=[2], pads=[1, 1])
    x = np.random.default_rng(0).standard_normal((1, 4, 16)).astype(np.float32)
    ref = run_ort(m, {"x": x})["y"]
    native = onnx2mil.predict(onnx2mil.build_coreml(m, config=NATIVE, compute_precision="fp32"), {"x": x},
                              runtime="mil-ane")["y"]
    bias = numpy_helper.to_array(next(t for t in m.graph.initializer if t.name == "b")).reshape(-1, 1)
    reach = ane_emulation.BIAS_REACH
    np.testing.assert_allclose(native[..., :reach], ref[..., :reach], rtol=2e-3, atol=2e-3)
    np.testing.assert_allclose(native[..., reach:], ref[..., reach:] - bias, rtol=2e-3, atol=2e-3)
    as_2d = onnx2mil.predict(onnx2mil.build_coreml(m, compute_precision="fp32"), {"x": x}, runtime="mil-ane")["y"]
    np.testing.assert_allclose(as_2d, ref, rtol=2e-3, atol=2e-3)


# ---- fp16 range analysis -------------------------------------------------------------------------

def scaled_layer_norm(scale):
    nodes = [oh.make_node("Mul", ["x", "s"], ["xs"], name="scale"),
             oh.make_node("LayerNormalization", ["xs", "g", "b"], ["y"], name="ln", axis=-1)]
    weights = {"s": np.array(scale, np.float32), "g": np.ones(16, np.float32), "b": np.zeros(16, np.float32)}
    return model(nodes, {"x": [1, 4, 16]}, ["y"], weights)


def masked_softmax():
    """An attention-style mask at float32's lowest: a sentinel an fp16 run holds as -inf, not an overflow."""
    m = np.zeros((1, 4, 16), np.float32)
    m[..., -1] = np.finfo(np.float32).min
    return model([oh.make_node("Add", ["x", "m"], ["masked"], name="mask"),
                  oh.make_node("Softmax", ["masked"], ["y"], name="softmax", axis=-1)], {"x": [1, 4, 16]}, ["y"],
                 {"m": m})


def test_fp16_range_flags_an_injected_norm_overflow_by_node():
    from onnx2mil.backend.validation.lint import fp16_range

    assert fp16_range(scaled_layer_norm(1.0)) == []
    inside = fp16_range(scaled_layer_norm(1e3))  # inputs fit fp16; the squared deviations do not
    assert [(r.node, r.op_type, r.kind) for r in inside] == [("ln", "LayerNormalization", "intermediate")]
    assert inside[0].peak > 65504
    both = fp16_range(scaled_layer_norm(1e5))
    assert [(r.node, r.kind) for r in both] == [("scale", "output"), ("ln", "intermediate")]
    assert fp16_range(masked_softmax()) == []


def test_lint_with_fp16_range(capsys, tmp_path):
    report = onnx2mil.lint(scaled_layer_norm(1e3), check_fp16_range=True, inputs={"x": (1, 4, 16)})
    assert report.findings == [] and not report.clean and report.fp16_range[0].node == "ln"
    assert onnx2mil.lint(scaled_layer_norm(1.0), check_fp16_range=True).clean
    onnx.save(scaled_layer_norm(1e3), str(tmp_path / "ln.onnx"))
    code, out, _ = run_cli(capsys, "lint", tmp_path / "ln.onnx", "--fp16-range", "--json")
    data = json.loads(out)
    assert code == 1 and data["fp16_range"][0]["node"] == "ln" and data["fp16_range"][0]["kind"] == "intermediate"
    x = np.full((1, 4, 16), 1e-3, np.float32)
    x[..., 0] = 0.0
    np.savez(tmp_path / "small.npz", x=x)  # scaled by 1e3: deviations ~1, well inside fp16
    code, out, _ = run_cli(capsys, "lint", tmp_path / "ln.onnx", "--fp16-range", "--inputs", tmp_path / "small.npz")
    assert code == 0 and "fp16" in out
    code, _, err = run_cli(capsys, "lint", tmp_path / "ln.onnx", "--inputs", tmp_path / "small.npz")
    assert code == 2 and "--fp16-range" in err


def test_emulated_neural_engine_reproduces_the_reported_fp16_cliffs():
    from onnx2mil.backend.runtime import ane_emulation

    softplus = onnx2mil.build_coreml(model([oh.make_node("Softplus", ["x"], ["y"], name="sp")], {"x": [1, 4]}, ["y"]),
                                     compute_precision="fp32")
    x = np.array([[1.0, 10.0, 10.5, 20.0]], np.float32)
    exact = onnx2mil.predict(softplus, {"x": x})["y"]
    emulated = onnx2mil.predict(softplus, {"x": x}, runtime="mil-ane")["y"]
    np.testing.assert_allclose(exact, np.logaddexp(0, x), rtol=1e-6)
    np.testing.assert_allclose(emulated[0, :2], np.logaddexp(0, x[0, :2]), rtol=2e-3)
    assert emulated[0, 2] == emulated[0, 3] == 0 and ane_emulation.SOFTPLUS_CLIFF == 10.4

    # coremltools#2690: 32 equal channels overflow sum(exp(x)) once x > log(65504 / 32) ~ 7.624
    lse = onnx2mil.build_coreml(model([oh.make_node("ReduceLogSumExp", ["x", "axes"], ["y"], name="lse", keepdims=1)],
                                      {"x": [2, 32]}, ["y"], {"axes": np.array([1], np.int64)}, opset=18),
                                compute_precision="fp32")
    x = np.stack([np.full(32, 7.5, np.float32), np.full(32, 7.7, np.float32)])
    ref = np.log(np.exp(x.astype(np.float64)).sum(axis=1, keepdims=True))
    emulated = onnx2mil.predict(lse, {"x": x}, runtime="mil-ane")["y"]
    np.testing.assert_allclose(onnx2mil.predict(lse, {"x": x})["y"], ref, rtol=1e-6)
    np.testing.assert_allclose(emulated[0], ref[0], rtol=2e-3)
    assert emulated[1, 0] == 0


# ---- hazard 8: fp16 overflow in norms, and the scaled-variance rewrite ----------------------------

SCALED_LN = {"node_lowering": {"ln": {"norm_fp16": "scaled"}}}


def test_scaled_variance_rewrite_clears_the_injected_norm_overflow():
    m = scaled_layer_norm(1e3)
    x = {"x": np.random.default_rng(0).standard_normal((1, 4, 16)).astype(np.float32)}
    flagged = onnx2mil.lint(m, check_fp16_range=True, feeds=x)
    assert [(r.node, r.hazard, r.rewrite) for r in flagged.fp16_range] == \
        [("ln", "norm_fp16_overflow", "node_lowering: {ln: {norm_fp16: scaled}}")]
    fixed = onnx2mil.lint(m, check_fp16_range=True, feeds=x, config=SCALED_LN)
    assert fixed.clean and fixed.fp16_range == [], fixed.summary()
    assert "norm_fp16_overflow: lowering.norm_fp16=scaled (ln)" in [
        f"{a.hazard}: {a.rewrite} ({a.scope})" for a in fixed.applied]
    for precision in ("fp32", "fp16"):
        report = onnx2mil.validate(m, compute_precision=precision, config=SCALED_LN, inputs=x)
        assert report.ok, report.summary()
        assert any(n.startswith("hazard avoided: norm_fp16_overflow") for n in report.notes)
    # The plain interpreter keeps a fused norm's statistics in fp32, so the overflow shows on the
    # emulated Neural Engine (fp16 statistics): the native build collapses to beta, the rewrite does not.
    from harness import run_ort

    ref = run_ort(m, x)["y"]
    native = onnx2mil.predict(onnx2mil.build_coreml(m), x, runtime="mil-ane")["y"]
    np.testing.assert_array_equal(native, 0)  # beta = 0
    scaled = onnx2mil.predict(onnx2mil.build_coreml(m, config=SCALED_LN), x, runtime="mil-ane")["y"]
    assert np.abs(scaled - ref).max() <= 1e-2 * np.abs(ref).max() + 1e-3
    assert not onnx2mil.validate(m, compute_precision="fp16", runtime="mil-ane", inputs=x).ok
    assert onnx2mil.validate(m, compute_precision="fp16", runtime="mil-ane", inputs=x, config=SCALED_LN).ok


def _norm_case(op_type):
    rng = np.random.default_rng(3)
    if op_type == "LayerNormalization":
        node = oh.make_node(op_type, ["xs", "g", "b"], ["y"], name="norm", axis=-1, epsilon=1e-5)
        weights, shape = {"g": w(16, seed=1) + 1, "b": w(16, seed=2)}, [2, 4, 16]
    elif op_type == "GroupNormalization":
        node = oh.make_node(op_type, ["xs", "g", "b"], ["y"], name="norm", num_groups=2, epsilon=1e-5)
        weights, shape = {"g": w(4, seed=1) + 1, "b": w(4, seed=2)}, [2, 4, 8, 3]
    else:
        node = oh.make_node(op_type, ["xs", "g", "b"], ["y"], name="norm", epsilon=1e-5)
        weights, shape = {"g": w(4, seed=1) + 1, "b": w(4, seed=2)}, [2, 4, 24]
    m = model([oh.make_node("Mul", ["x", "s"], ["xs"], name="scale"), node], {"x": shape}, ["y"],
              {"s": np.array(1e3, np.float32), **weights}, opset=21)
    del m.graph.output[:]  # onnx's shape inference leaves GroupNormalization's output untyped
    m.graph.output.append(oh.make_tensor_value_info("y", F, shape))
    x = rng.standard_normal(shape).astype(np.float32)
    x[0] = 0.0  # a constant group: the rescaled epsilon must not turn it into 0 / 0
    x[1, 0] *= 1e-3  # small deviations: computed as without the rewrite (s = 1)
    return m, {"x": x}


@pytest.mark.parametrize("op_type", ["LayerNormalization", "GroupNormalization", "InstanceNormalization"])
def test_scaled_variance_matches_onnxruntime_for_every_fused_norm(op_type):
    from harness import run_ort

    m, x = _norm_case(op_type)
    ref = run_ort(m, x)["y"]
    config = {"lowering": {"norm_fp16": "scaled"}}
    fp32 = onnx2mil.predict(onnx2mil.build_coreml(m, compute_precision="fp32", config=config), x)["y"]
    np.testing.assert_allclose(fp32, ref, rtol=1e-5, atol=1e-5)
    for runtime in ("mil", "mil-ane"):
        fp16 = onnx2mil.predict(onnx2mil.build_coreml(m, config=config), x, runtime=runtime)["y"]
        assert np.isfinite(fp16).all()
        assert np.abs(fp16.astype(np.float64) - ref).max() <= 1e-2 * np.abs(ref).max() + 1e-3, runtime
    assert [f.node for f in onnx2mil.lint(m, check_fp16_range=True, feeds=x).fp16_range] == ["norm"]
    assert onnx2mil.lint(m, check_fp16_range=True, feeds=x, config=config).clean


def test_isolate_offers_the_norm_variants_and_the_emulated_neural_engine_breaks_native(tmp_path):
    m = scaled_layer_norm(1e3)
    x = {"x": np.random.default_rng(0).standard_normal((1, 4, 16)).astype(np.float32)}
    result = onnx2mil.isolate(m, "ln", tmp_path, inputs=x, runtimes=["mil-fp32", "mil-fp16", "mil-ane"])
    assert result.variants == ["native", "scaled"] and result.lowering_key == "norm_fp16"
    assert result.failing_variants() == ["native"]
    assert result.cell("native", "mil-ane").status == "fail" and result.cell("scaled", "mil-ane").status == "pass"


def test_scaled_variance_keeps_the_layer_norm_statistics_outputs():
    from harness import run_ort

    node = oh.make_node("LayerNormalization", ["xs", "g", "b"], ["y", "mean", "inv_std"], name="ln", axis=-1)
    m = model([oh.make_node("Mul", ["x", "s"], ["xs"], name="scale"), node], {"x": [2, 4, 16]},
              ["y", "mean", "inv_std"], {"s": np.array(1e3, np.float32), "g": w(16, seed=1), "b": w(16, seed=2)})
    x = {"x": np.random.default_rng(5).standard_normal((2, 4, 16)).astype(np.float32)}
    ref = run_ort(m, x)
    got = onnx2mil.predict(onnx2mil.build_coreml(m, compute_precision="fp32", config=SCALED_LN), x)
    for name in ("y", "mean", "inv_std"):
        np.testing.assert_allclose(got[name], ref[name], rtol=1e-5, atol=1e-5 * np.abs(ref[name]).max())
