"""isolate(): one node with its real inputs, every lowering variant on every runtime. A device bug
emulated in the interpreter (the ANE rank-3 conv_transpose bias hazard) must show as exactly the
variant it affects failing."""
import json
import sys

import numpy as np
import onnx
import pytest

import onnx2mil
from onnx2mil.backend.interpreter.kernels.registry import KERNELS
from onnx2mil.errors import ValidationInputError
from harness import run_ort
from test_validation import small_net

BIAS_REACH = 8  # elements per channel that get the bias under the emulated bug


@pytest.fixture
def ane_bias_bug(monkeypatch):
    """The reported ANE behaviour on a rank-3 conv_transpose: its bias is added to the first
    elements of each channel only (MNN/BigVGAN report). Rank-4 (as_2d) is unaffected."""
    original = KERNELS["conv_transpose"]

    def buggy(op, x, weight, bias=None, **kwargs):
        if bias is None or np.ndim(x) != 3:
            return original(op, x=x, weight=weight, bias=bias, **kwargs)
        y = np.array(original(op, x=x, weight=weight, bias=None, **kwargs), dtype=np.float32)
        y[..., :BIAS_REACH] += np.asarray(bias, np.float32).reshape(-1, 1)
        return y

    monkeypatch.setitem(KERNELS, "conv_transpose", buggy)


def test_bundle_is_complete_and_reproducible_with_onnxruntime(tmp_path):
    result = onnx2mil.isolate(small_net(), "up", tmp_path)
    assert result.ok and result.variants == ["as_2d", "native", "split_bias"]
    assert result.runtimes[:2] == ["mil-fp32", "mil-fp16"]
    for v in result.variants:
        for p in ("fp32", "fp16"):
            assert (tmp_path / f"{v}.{p}.mlpackage").is_dir()
    single = onnx.load(str(tmp_path / "node.onnx"))
    assert [n.name for n in single.graph.node] == ["up"]
    assert [i.name for i in single.graph.input] == ["c0"]
    assert sorted(t.name for t in single.graph.initializer) == ["b1", "w1"]
    with np.load(tmp_path / "inputs.npz") as inputs, np.load(tmp_path / "expected.npz") as expected:
        # the node alone, on its captured inputs, reproduces what the full model computed there
        again = run_ort(single, {"c0": inputs["c0"]})["up"]
        np.testing.assert_allclose(again, expected["up"], rtol=1e-6, atol=1e-6)
        full = run_ort(small_net(), {"x": onnx2mil.backend.validation.reference.make_inputs(small_net())["x"]})
        assert expected["up"].shape == (1, 6, 48) and full["y"].shape == (1, 2, 48)
    readme = (tmp_path / "README.md").read_text()
    assert "`up` (ConvTranspose)" in readme and "| native |" in readme
    matrix = json.loads((tmp_path / "matrix.json").read_text())
    assert matrix["matrix"]["native"]["mil-fp16"] == "pass"


def test_emulated_ane_bias_bug_fails_only_the_native_variant(tmp_path, ane_bias_bug):
    result = onnx2mil.isolate(small_net(), "up", tmp_path)
    assert not result.ok
    assert result.failing_variants() == ["native"]
    for runtime in ("mil-fp32", "mil-fp16"):
        assert result.cell("native", runtime).status == "fail"
        assert result.cell("as_2d", runtime).status == "pass"
        assert result.cell("split_bias", runtime).status == "pass"
    assert "native on mil-fp32" in (tmp_path / "README.md").read_text()


def test_node_found_by_output_tensor_and_variant_subset(tmp_path):
    result = onnx2mil.isolate(small_net(), "c0", tmp_path, variants=["native"], runtimes=["mil-fp32"])
    assert result.node == "conv0" and result.lowering_key == "conv_1d"
    assert result.matrix == {"native": {"mil-fp32": "pass"}}


def test_ops_without_lowerings_have_one_default_variant(tmp_path):
    result = onnx2mil.isolate(small_net(), "add_bias", tmp_path, runtimes=["mil-fp32"])
    assert result.variants == ["default"] and result.ok
    single = onnx.load(str(tmp_path / "node.onnx"))
    assert [i.name for i in single.graph.input] == ["c2"]          # computed from the input: fed
    assert [t.name for t in single.graph.initializer] == ["bias2"]  # computed from constants: constant


def test_refusals_name_the_problem(tmp_path):
    with pytest.raises(ValidationInputError, match="no node named 'nope'"):
        onnx2mil.isolate(small_net(), "nope", tmp_path)
    with pytest.raises(ValidationInputError, match="do not apply"):
        onnx2mil.isolate(small_net(), "up", tmp_path, variants=["sideways"])
    with pytest.raises(ValidationInputError, match="unknown runtime"):
        onnx2mil.isolate(small_net(), "up", tmp_path, runtimes=["tpu"])


def test_coreml_runtimes_off_macos_are_a_clear_error(tmp_path):
    if sys.platform == "darwin":
        pytest.skip("CoreML is available on macOS: the off-macOS error does not apply")
    with pytest.raises(onnx2mil.RuntimeUnavailableError, match="macOS"):
        onnx2mil.isolate(small_net(), "up", tmp_path, runtimes=["coreml-CPU_AND_NE"])


def test_bigvgan_upsampling_node_under_the_emulated_bug(tmp_path, ane_bias_bug):
    from onnx2mil import models

    node = "/ups.1/ups.1.0/ConvTranspose"
    result = onnx2mil.isolate(models.build("bigvgan-tiny"), node, tmp_path,
                              inputs=models.example_inputs("bigvgan-tiny"))
    assert result.node == node and result.lowering_key == "conv_transpose_1d"
    assert result.failing_variants() == ["native"]
    single = onnx.load(str(tmp_path / "node.onnx"))
    assert sorted(t.name for t in single.graph.initializer) == ["ups.1.0.bias", "ups.1.0.weight"]
    with np.load(tmp_path / "inputs.npz") as inputs, np.load(tmp_path / "expected.npz") as expected:
        again = run_ort(single, dict(inputs))
        np.testing.assert_allclose(again[single.graph.output[0].name], expected[single.graph.output[0].name],
                                   rtol=1e-5, atol=1e-5)


@pytest.mark.macos
def test_coreml_compute_units_join_the_matrix_on_macos(tmp_path):
    if sys.platform != "darwin":
        pytest.skip("RuntimeUnavailableError: CoreML runs on macOS only")
    result = onnx2mil.isolate(small_net(), "up", tmp_path)
    assert result.runtimes == ["mil-fp32", "mil-fp16", "coreml-CPU_ONLY", "coreml-CPU_AND_GPU",
                               "coreml-CPU_AND_NE", "coreml-ALL"]
    assert all(result.cell("as_2d", r).status == "pass" for r in result.runtimes)


def test_multi_output_node_compares_every_output(tmp_path):
    import onnx.helper as oh

    graph = oh.make_graph(
        [oh.make_node("Split", ["x", "sizes"], ["a", "b"], name="split", axis=1),
         oh.make_node("Mul", ["a", "b"], ["y"], name="mul")], "split_net",
        [oh.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 6, 5])],
        [oh.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 3, 5])],
        [onnx.numpy_helper.from_array(np.array([3, 3], np.int64), "sizes")])
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 17)])
    result = onnx2mil.isolate(model, "split", tmp_path, runtimes=["mil-fp32"])
    assert result.ok and result.variants == ["default"]
    with np.load(tmp_path / "expected.npz") as expected:
        assert sorted(expected.files) == ["a", "b"]
        x = np.load(tmp_path / "inputs.npz")["x"]
        np.testing.assert_array_equal(expected["a"], x[:, :3])   # the split, computed independently
        np.testing.assert_array_equal(expected["b"], x[:, 3:])


def test_unnamed_nodes_of_an_unsorted_graph_are_found(tmp_path):
    """Unnamed nodes are named by their topological index (as build and validate name them), not
    by their position in the file: the graph here lists its nodes in reverse."""
    import onnx.helper as oh

    nodes = [oh.make_node("Relu", ["a"], ["y"]), oh.make_node("Mul", ["x", "x"], ["a"])]
    graph = oh.make_graph(nodes, "unsorted", [oh.make_tensor_value_info("x", 1, [2, 3])],
                          [oh.make_tensor_value_info("y", 1, [2, 3])])
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 17)])
    result = onnx2mil.isolate(model, "Relu_1", tmp_path / "bundle", runtimes=["mil-fp32"])
    assert result.ok and result.node == "Relu_1"
