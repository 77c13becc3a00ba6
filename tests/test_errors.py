"""Every failure onnx2mil can foresee is an ``Onnx2MilError`` naming what failed (config key, input,
node with op type and opset); the CLI turns each into exit 2 and one line on stderr."""
import numpy as np
import onnx
import onnx.helper as oh
import pytest
from coremltools.converters.mil import Builder as mb
from onnx import numpy_helper

import coremltools as ct
import onnx2mil
from onnx2mil.backend.convert.config import Config
from onnx2mil.cli import main
from onnx2mil.errors import (BuildError, ConfigError, InputError, Onnx2MilError, OptionError, PackageError,
                             SaveError)


def conv_model(cin=8, length=16):
    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((4, cin, 3)).astype(np.float32), "w")
    graph = oh.make_graph([oh.make_node("Conv", ["mel", "w"], ["y"], name="/conv/Conv", pads=[1, 1])],
                          "conv", [oh.make_tensor_value_info("mel", 1, [1, cin, "T"])],
                          [oh.make_tensor_value_info("y", 1, [1, 4, "T"])], [w])
    return oh.make_model(graph, opset_imports=[oh.make_opsetid("", 17)])


def test_every_error_type_is_an_onnx2mil_error():
    for cls in (BuildError, ConfigError, InputError, OptionError, PackageError, SaveError,
                onnx2mil.errors.ConversionError, onnx2mil.InvalidModelError, onnx2mil.UnsupportedOperatorError):
        assert issubclass(cls, Onnx2MilError)


# ---- config: a schema checked at load, the offending key named ------------------------------------

@pytest.mark.parametrize("config, key, reason", [
    ({"lowerings": {}}, "lowerings", "unknown key"),
    ({"lowering": {"conv_2d": "as_2d"}}, "lowering.conv_2d", "unknown key"),
    ({"lowering": {"conv_1d": "sideways"}}, "lowering.conv_1d", "cannot be 'sideways'"),
    ({"lowering": "as_2d"}, "lowering", "must be a mapping"),
    ({"tolerances": "loose"}, "tolerances", "must be a mapping, not str 'loose'"),
    ({"tolerances": {"fp8": {}}}, "tolerances.fp8", "unknown key"),
    ({"tolerances": {"fp16": {"rel_to_max": "big"}}}, "tolerances.fp16.rel_to_max", "must be a number"),
    ({"tolerances": {"fp16": {"rel_to_max": True}}}, "tolerances.fp16.rel_to_max", "must be a number"),
    ({"tolerances": {"fp32": {"rel_to_max": -1}}}, "tolerances.fp32.rel_to_max", "outside"),
    ({"tolerances": {"fp32": {"min_cosine": 2}}}, "tolerances.fp32.min_cosine", "outside"),
    ({"tolerances": {"fp32": {"max_abs": 1}}}, "tolerances.fp32.max_abs", "unknown key"),
    ({"node_lowering": {"/up/ConvTranspose": {"conv_transpose_1d": "flat"}}},
     "node_lowering./up/ConvTranspose.conv_transpose_1d", "cannot be 'flat'"),
    ({"node_lowering": ["/up/ConvTranspose"]}, "node_lowering", "must be a mapping"),
    ({"precision": {"fp16_depthwise_weights": "stochastic"}}, "precision.fp16_depthwise_weights", "cannot be 'stochastic'"),
    ({"precision": {"fp16_weights": "nearest"}}, "precision.fp16_weights", "unknown key"),
    (["lowering"], "", "must be a mapping"),
])
def test_config_schema_names_the_key(config, key, reason):
    with pytest.raises(ConfigError, match=reason) as err:
        Config.load(config)
    assert err.value.key == key


def test_config_files_yaml_syntax_and_missing(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("lowering:\n  conv_1d: [as_2d\n")
    with pytest.raises(ConfigError, match="bad.yaml is not valid YAML"):
        Config.load(bad)
    with pytest.raises(ConfigError, match="cannot read"):
        Config.load(tmp_path / "missing.yaml")
    typo = tmp_path / "typo.yaml"
    typo.write_text("lowering:\n  conv_transpose_1d: as_2d\ntolerance:\n  fp16: {rel_to_max: 0.1}\n")
    with pytest.raises(ConfigError, match="tolerance: unknown key"):
        Config.load(typo)


def test_the_shipped_presets_pass_the_schema():
    from pathlib import Path

    for preset in sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml")):
        Config.load(preset)


def test_a_node_lowering_for_a_node_the_model_lacks_is_refused():
    with pytest.raises(ConfigError, match="no node of the model has this name") as err:
        onnx2mil.build_coreml(conv_model(), config={"node_lowering": {"/conv/Conv2": {"conv_1d": "as_2d"}}})
    assert err.value.key == "node_lowering./conv/Conv2"
    onnx2mil.build_coreml(conv_model(), config={"node_lowering": {"/conv/Conv": {"conv_1d": "as_2d"}}})


# ---- the model: what onnx's full checker (and onnxruntime) rejects is refused ----------------------

def test_a_model_outside_an_ops_type_constraints_is_refused_with_the_checkers_reason():
    graph = oh.make_graph([oh.make_node("AveragePool", ["x"], ["y"], name="/pool", kernel_shape=[2, 2])], "g",
                          [oh.make_tensor_value_info("x", onnx.TensorProto.INT32, [1, 2, 4, 4])],
                          [oh.make_tensor_value_info("y", onnx.TensorProto.INT32, [1, 2, 3, 3])])
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 12)])
    with pytest.raises(onnx2mil.InvalidModelError,
                       match=r"onnx.checker rejected the model: .*AveragePool.*unsupported type: tensor\(int32\)"):
        onnx2mil.build_coreml(model)


def test_a_model_only_onnxs_strict_inference_rejects_but_onnxruntime_runs_is_built():
    # onnx's own node test case: strict inference of MeanVarianceNormalization's function body fails
    from onnx.backend.test.case.node import collect_testcases

    case = next(c for c in collect_testcases("MeanVarianceNormalization") if c.name == "test_mvn")
    with pytest.raises(onnx.shape_inference.InferenceError):
        onnx.checker.check_model(case.model, full_check=True)
    onnx2mil.build_coreml(case.model, compute_precision="fp32")


# ---- build: inputs= that contradict the model, coremltools errors during emission -------------------

@pytest.mark.parametrize("inputs, message", [
    ({"mel": (1, 80, 64)}, r"input 'mel': shape \(1, 80, 64\) contradicts the model's \(1, 8, T\) at dim 1"),
    ({"mel": (1, 8)}, r"input 'mel': shape \(1, 8\) has rank 2; the model's input has rank 3"),
    ({"mel": (1, 8, -1)}, r"input 'mel': dim 2 of shape \(1, 8, -1\) is negative"),
    ({"audio": (1, 8, 64)}, r"input 'audio': not an input of the model"),
    ("mel", "inputs= must be"),
])
def test_inputs_that_contradict_the_model_name_the_input(inputs, message):
    with pytest.raises(InputError, match=message):
        onnx2mil.build_coreml(conv_model(), inputs=inputs)


def test_inputs_that_fit_the_model_build():
    onnx2mil.build_coreml(conv_model(), inputs={"mel": (1, 8, 64)})
    onnx2mil.build_coreml(conv_model(), inputs=[ct.TensorType(name="mel", shape=(1, 8, ct.RangeDim(4, 64)))])


def test_a_coremltools_error_during_emission_is_a_build_error_naming_the_node():
    # a builder whose MIL coremltools' type inference rejects (matmul of incompatible shapes)
    @onnx2mil.op_builder("BadMatMul", domain="test.errors")
    def bad_matmul(node, ctx):
        x = ctx.input(node, 0)
        ctx.set_output(node, mb.matmul(x=x, y=np.ones((3, 5), np.float32), name=ctx.mil_name(node.outputs[0])))

    graph = oh.make_graph([oh.make_node("BadMatMul", ["x"], ["y"], name="/block/bad", domain="test.errors")],
                          "g", [oh.make_tensor_value_info("x", 1, [2, 4])], [oh.make_tensor_value_info("y", 1, None)])
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 17), oh.make_opsetid("test.errors", 2)])
    with pytest.raises(BuildError) as err:
        onnx2mil.build_coreml(model)
    e = err.value
    assert (e.node, e.op_type, e.domain, e.opset) == ("/block/bad", "BadMatMul", "test.errors", 2)
    assert "ValueError" in e.reason and isinstance(e.__cause__, ValueError)
    assert str(e).startswith("cannot build node '/block/bad' (test.errors::BadMatMul, opset 2): ValueError")


def test_bad_options_are_option_errors():
    with pytest.raises(OptionError, match="compute_precision: must be fp16 or fp32"):
        onnx2mil.build_coreml(conv_model(), compute_precision="int8")
    with pytest.raises(OptionError, match="outputs: .* not tensors of the model"):
        onnx2mil.build_coreml(conv_model(), outputs=["nowhere"])


# ---- predict -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    path = tmp_path_factory.mktemp("pkg") / "m.mlpackage"
    return onnx2mil.save(onnx2mil.build_coreml(conv_model(), compute_precision="fp32"), path)


def test_predict_input_errors_name_the_input(saved):
    mel = np.zeros((1, 8, 16), np.float32)
    with pytest.raises(InputError, match="input 'audio': not an input of the model; it takes \\['mel'\\]"):
        onnx2mil.predict(saved, {"audio": mel})
    with pytest.raises(InputError, match="input 'mel': missing"):
        onnx2mil.predict(saved, {})
    with pytest.raises(InputError, match="inputs must be a mapping .* not list"):
        onnx2mil.predict(saved, [mel])
    for bad in (mel.astype(np.complex64), mel.astype(np.int64), mel.astype(np.int8)):
        with pytest.raises(InputError, match=f"input 'mel': got a {bad.dtype} array; the model takes float32"):
            onnx2mil.predict(saved, {"mel": bad})
    assert onnx2mil.predict(saved, {"mel": mel.astype(np.float64)})["y"].shape == (1, 4, 16)


def test_predict_on_a_missing_or_foreign_package(tmp_path):
    with pytest.raises(PackageError, match="no such .mlpackage"):
        onnx2mil.predict(tmp_path / "missing.mlpackage", {})
    (tmp_path / "junk.mlpackage").mkdir()
    with pytest.raises(PackageError, match="not a readable Core ML model"):
        onnx2mil.predict(tmp_path / "junk.mlpackage", {})
    with pytest.raises(OptionError, match="model: must be an MLModel"):
        onnx2mil.predict(42, {})


# ---- the CLI: exit 2, one line, no traceback (``--debug`` shows it) --------------------------------

@pytest.fixture
def files(tmp_path, saved):
    onnx.save(conv_model(), str(tmp_path / "m.onnx"))
    (tmp_path / "junk.onnx").write_bytes(b"\x08\x01\x12garbage")
    (tmp_path / "bad.yaml").write_text("lowering: [\n")
    (tmp_path / "typo.yaml").write_text("lowerings:\n  conv_1d: as_2d\n")
    (tmp_path / "loose.yaml").write_text("tolerances: loose\n")
    (tmp_path / "node.yaml").write_text("node_lowering:\n  /nope: {conv_1d: as_2d}\n")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    np.savez(tmp_path / "wrong.npz", audio=np.zeros((1, 8, 16), np.float32))
    np.savez(tmp_path / "mel.npz", mel=np.zeros((1, 8, 16), np.float32))
    np.savez(tmp_path / "complex.npz", mel=np.zeros((1, 8, 16), np.complex64))
    (tmp_path / "empty.mlpackage").mkdir()
    return tmp_path


CLI_CASES = [
    (["convert", "{d}/missing.onnx", "-o", "{d}/o.mlpackage"], "no such ONNX file"),
    (["convert", "{d}/junk.onnx", "-o", "{d}/o.mlpackage"], "not a readable ONNX model"),
    (["convert", "{d}/m.onnx", "-o", "{d}/o.mlpackage", "--config", "{d}/bad.yaml"], "not valid YAML"),
    (["convert", "{d}/m.onnx", "-o", "{d}/o.mlpackage", "--config", "{d}/typo.yaml"], "lowerings: unknown key"),
    (["convert", "{d}/m.onnx", "-o", "{d}/o.mlpackage", "--config", "{d}/loose.yaml"], "tolerances: must be a mapping"),
    (["convert", "{d}/m.onnx", "-o", "{d}/o.mlpackage", "--config", "{d}/node.yaml"], "node_lowering./nope"),
    (["convert", "{d}/m.onnx", "-o", "{d}/o.mlpackage", "--config", "{d}/none.yaml"], "cannot read"),
    (["convert", "{d}/m.onnx", "-o", "."], "cannot save to . : not a package name".replace(" :", ":")),
    (["convert", "{d}/m.onnx", "-o", "{d}/empty.mlpackage"], "not an .mlpackage written by onnx2mil"),
    (["convert", "{d}/m.onnx", "-o", "{d}/m.onnx"], "cannot save to"),
    (["run", "{d}/missing.mlpackage", "--inputs", "{d}/wrong.npz", "-o", "{d}/y.npz"], "no such .mlpackage"),
    (["run", "{d}/empty.mlpackage", "--inputs", "{d}/wrong.npz", "-o", "{d}/y.npz"], "not a readable Core ML model"),
    (["run", "{saved}", "--inputs", "{d}/junk.npz", "-o", "{d}/y.npz"], "not a readable .npz file"),
    (["run", "{saved}", "--inputs", "{d}/missing.npz", "-o", "{d}/y.npz"], "no such inputs file"),
    (["run", "{saved}", "--inputs", "{d}/wrong.npz", "-o", "{d}/y.npz"], "input 'audio': not an input"),
    (["run", "{saved}", "--inputs", "{d}/complex.npz", "-o", "{d}/y.npz"], "got a complex64 array"),
    (["validate", "{d}/m.onnx", "--inputs", "{d}/junk.npz"], "not a readable .npz file"),
    (["validate", "{d}/m.onnx", "--inputs", "{d}/mel.npz", "--config", "{d}/loose.yaml"],
     "tolerances: must be a mapping"),
    (["isolate", "{d}/m.onnx", "--node", "/nope", "-o", "{d}/bundle", "--inputs", "{d}/wrong.npz"], "no node named"),
]


@pytest.mark.parametrize("argv, message", CLI_CASES, ids=[" ".join(a[:1] + a[-2:]) for a, _ in CLI_CASES])
def test_cli_bad_input_exits_2_with_one_line(capsys, files, saved, argv, message):
    code = main([a.format(d=files, saved=saved) for a in argv])
    out, err = capsys.readouterr()
    assert code == 2
    assert err.count("\n") == 1 and err.startswith(f"onnx2mil {argv[0]}: error: "), err
    assert "Traceback" not in err and message in err


def test_cli_debug_shows_the_traceback(capsys, files):
    code = main(["--debug", "convert", str(files / "m.onnx"), "-o", str(files / "o.mlpackage"),
                 "--config", str(files / "typo.yaml")])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback (most recent call last)" in err and "ConfigError" in err
    assert err.rstrip().splitlines()[-1].startswith("onnx2mil convert: error: config: lowerings")
