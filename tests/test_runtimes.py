"""onnx2mil.predict: model forms, ONNX naming, capture, int64 inputs, and the CoreML runtime seam."""
import platform

import numpy as np
import onnx
import onnx.helper as oh
import pytest
from onnx import TensorProto, numpy_helper

import onnx2mil
from harness import rand, run_ort
from onnx2mil.backend.runtime import coreml as coreml_runtime
from onnx2mil.backend.convert.pipeline import read_name_map

ON_MACOS = platform.system() == "Darwin"


def conv_relu_model() -> onnx.ModelProto:
    """x -> Conv -> Relu -> y, plus an int64 input added after a Cast (ONNX int64 -> MIL int32)."""
    nodes = [oh.make_node("Conv", ["x", "w", "b"], ["conv_out"], name="conv", pads=[1, 1]),
             oh.make_node("Relu", ["conv_out"], ["relu_out"], name="relu"),
             oh.make_node("Cast", ["offset"], ["offset_f"], name="cast", to=TensorProto.FLOAT),
             oh.make_node("Add", ["relu_out", "offset_f"], ["y"], name="add")]
    graph = oh.make_graph(
        nodes, "conv_relu",
        [oh.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16]),
         oh.make_tensor_value_info("offset", TensorProto.INT64, [1, 4, 1])],
        [oh.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 16])],
        [numpy_helper.from_array(rand(4, 3, 3, seed=1), "w"), numpy_helper.from_array(rand(4, seed=2), "b")])
    return onnx.shape_inference.infer_shapes(oh.make_model(graph, opset_imports=[oh.make_opsetid("", 17)]))


FEEDS = {"x": rand(1, 3, 16, seed=3), "offset": np.array([3, -2, 0, 7], dtype=np.int64).reshape(1, 4, 1)}


@pytest.fixture(scope="module")
def model():
    return conv_relu_model()


@pytest.fixture(scope="module")
def mlmodel(model):
    return onnx2mil.build_coreml(model, compute_precision="fp32")


def test_predict_mlmodel_by_onnx_names(model, mlmodel):
    got = onnx2mil.predict(mlmodel, FEEDS)
    assert set(got) == {"y"}
    np.testing.assert_allclose(got["y"], run_ort(model, FEEDS)["y"], rtol=1e-5, atol=1e-6)


def test_predict_saved_package_and_bare_program(model, mlmodel, tmp_path):
    path = onnx2mil.save(mlmodel, tmp_path / "m.mlpackage")
    expected = run_ort(model, FEEDS)["y"]
    np.testing.assert_allclose(onnx2mil.predict(path, FEEDS)["y"], expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(onnx2mil.predict(str(path), FEEDS)["y"], expected, rtol=1e-5, atol=1e-6)
    names = read_name_map(mlmodel)
    prog = onnx2mil.load_saved_program(path)
    mil_feeds = {names["inputs"][k]: v for k, v in FEEDS.items()}
    got = onnx2mil.predict(prog, mil_feeds)                         # a bare Program speaks MIL names
    np.testing.assert_allclose(got[names["outputs"]["y"]], expected, rtol=1e-5, atol=1e-6)


def test_capture_maps_onnx_tensors_through_the_name_map(model, mlmodel):
    result = onnx2mil.predict(mlmodel, FEEDS, capture=True)
    assert set(result) == {"outputs", "tensors"}
    names = read_name_map(mlmodel)
    onnx_all = run_ort(_all_outputs(model), FEEDS)
    compared = 0
    for onnx_name, mil_name in names["tensors"].items():
        if mil_name is None:                                      # fused away by a pass
            continue
        np.testing.assert_allclose(result["tensors"][mil_name], onnx_all[onnx_name], rtol=1e-5, atol=1e-6)
        compared += 1
    assert compared >= 2
    np.testing.assert_array_equal(result["outputs"]["y"], onnx2mil.predict(mlmodel, FEEDS)["y"])


def _all_outputs(model):
    extended = onnx.ModelProto()
    extended.CopyFrom(model)
    known = {o.name for o in extended.graph.output}
    for vi in extended.graph.value_info:
        if vi.name not in known:
            extended.graph.output.append(vi)
    return extended


def test_int64_inputs_are_converted_and_range_checked(mlmodel):
    as_int32 = {**FEEDS, "offset": FEEDS["offset"].astype(np.int32)}
    np.testing.assert_array_equal(onnx2mil.predict(mlmodel, FEEDS)["y"], onnx2mil.predict(mlmodel, as_int32)["y"])
    with pytest.raises(onnx2mil.Onnx2MilError, match="int32 range"):
        onnx2mil.predict(mlmodel, {**FEEDS, "offset": FEEDS["offset"] + 2 ** 33})


def test_unknown_input_names_and_runtime_are_errors(mlmodel):
    with pytest.raises(onnx2mil.InputError, match="input 'X': not an input of the model"):
        onnx2mil.predict(mlmodel, {"X": FEEDS["x"], "offset": FEEDS["offset"]})
    with pytest.raises(onnx2mil.errors.OptionError, match="runtime: must be one of"):
        onnx2mil.predict(mlmodel, FEEDS, runtime="tflite")
    with pytest.raises(onnx2mil.errors.OptionError, match="capture=True needs runtime='mil'"):
        onnx2mil.predict(mlmodel, FEEDS, runtime="coreml", capture=True)


def test_fp16_model_predicts_within_tolerance(model):
    fp16 = onnx2mil.build_coreml(model, compute_precision="fp16")
    got = onnx2mil.predict(fp16, FEEDS)["y"]
    ref = run_ort(model, FEEDS)["y"]
    assert np.max(np.abs(got - ref)) <= 1e-2 * np.max(np.abs(ref))
    assert not np.array_equal(got, ref)       # fp16 storage rounds


@pytest.mark.skipif(ON_MACOS, reason="checks the refusal off macOS")
def test_coreml_runtime_is_refused_off_macos(mlmodel):
    with pytest.raises(onnx2mil.RuntimeUnavailableError, match="macOS"):
        onnx2mil.predict(mlmodel, FEEDS, runtime="coreml")
    assert "macOS" in coreml_runtime.available()


@pytest.mark.macos
@pytest.mark.skipif(not ON_MACOS, reason="CoreML runs only on macOS")
@pytest.mark.parametrize("units", ["CPU_ONLY", "CPU_AND_GPU", "CPU_AND_NE", "ALL"])
def test_coreml_runtime_matches_interpreter(model, units, tmp_path):
    mlmodel = onnx2mil.build_coreml(model, compute_precision="fp32")
    path = onnx2mil.save(mlmodel, tmp_path / "m.mlpackage")
    got = onnx2mil.predict(path, FEEDS, runtime="coreml", compute_units=units)["y"]
    ref = run_ort(model, FEEDS)["y"]
    assert np.max(np.abs(got - ref)) <= 1e-2 * np.max(np.abs(ref))


def test_compute_units_names():
    import coremltools as ct
    assert coreml_runtime.compute_units_of("cpu_only") == ct.ComputeUnit.CPU_ONLY
    assert coreml_runtime.compute_units_of(None) == ct.ComputeUnit.ALL
    with pytest.raises(ValueError, match="unknown compute_units"):
        coreml_runtime.compute_units_of("GPU_ONLY")
