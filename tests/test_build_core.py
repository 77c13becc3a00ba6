"""build_coreml's contract: typed errors, names, truncation, config, external data, atomic save."""
import os

import numpy as np
import onnx
import onnx.helper as oh
import pytest
from onnx import numpy_helper

import onnx2mil
from onnx2mil.backend.convert import pipeline


def conv_chain(input_name="input.1", output_name="out:0", cin=3):
    rng = np.random.default_rng(0)
    w1 = numpy_helper.from_array(rng.standard_normal((4, cin, 3)).astype(np.float32), "conv1.weight")
    w2 = numpy_helper.from_array(rng.standard_normal((2, 4, 3)).astype(np.float32), "conv2.weight")
    nodes = [oh.make_node("Conv", [input_name, "conv1.weight"], ["/conv1/Conv_output_0"], name="/conv1/Conv",
                          pads=[1, 1]),
             oh.make_node("Conv", ["/conv1/Conv_output_0", "conv2.weight"], [output_name], name="/conv2/Conv")]
    graph = oh.make_graph(nodes, "chain", [oh.make_tensor_value_info(input_name, 1, [1, cin, 16])],
                          [oh.make_tensor_value_info(output_name, 1, [1, 2, 14])], [w1, w2])
    return oh.make_model(graph, opset_imports=[oh.make_opsetid("", 17)])


def test_every_unsupported_node_is_reported_at_once():
    model = conv_chain()
    g = model.graph
    g.node.append(oh.make_node("Foo", ["out:0"], ["f"], name="foo_1", domain="com.example"))
    g.node.append(oh.make_node("Bar", ["f"], ["g"], name="bar_1", domain="com.example"))
    # a ConvTranspose whose weight is a graph input: MIL needs a constant weight
    g.input.append(oh.make_tensor_value_info("w_in", 1, [2, 2, 3]))
    g.node.append(oh.make_node("ConvTranspose", ["out:0", "w_in"], ["h"], name="/up/ConvTranspose"))
    model.opset_import.append(oh.make_opsetid("com.example", 1))
    with pytest.raises(onnx2mil.UnsupportedOperatorError) as err:
        onnx2mil.build_coreml(model)
    refused = {r.node: r for r in err.value.refusals}
    assert set(refused) == {"foo_1", "bar_1", "/up/ConvTranspose"}
    assert refused["foo_1"].domain == "com.example" and "no builder" in refused["foo_1"].reason
    assert "constant" in refused["/up/ConvTranspose"].reason
    message = str(err.value)
    for name in ("foo_1", "bar_1", "/up/ConvTranspose", "ConvTranspose, opset 17", "com.example::Foo"):
        assert name in message


def test_malformed_models_raise_invalid_model_error(tmp_path):
    with pytest.raises(onnx2mil.InvalidModelError, match="no such"):
        onnx2mil.build_coreml(tmp_path / "missing.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x01\x02not a protobuf")
    with pytest.raises(onnx2mil.InvalidModelError):
        onnx2mil.build_coreml(junk)
    model = conv_chain()
    model.graph.node[1].input[0] = "nowhere"  # dangling input
    with pytest.raises(onnx2mil.InvalidModelError):
        onnx2mil.build_coreml(model)


def test_onnx_names_survive_sanitizing():
    mlmodel = onnx2mil.build_coreml(conv_chain(), compute_precision="fp32")
    names = pipeline.read_name_map(mlmodel)
    spec = mlmodel.get_spec()
    assert [i.name for i in spec.description.input] == [names["inputs"]["input.1"]]
    assert [o.name for o in spec.description.output] == [names["outputs"]["out:0"]]
    assert names["inputs"]["input.1"] != "input.1"  # MIL forced a sanitized identifier
    assert set(names["tensors"]) == {"/conv1/Conv_output_0", "out:0"}
    assert names["precision"] == "fp32"


def test_outputs_cut_the_model_at_a_tensor(tmp_path):
    mlmodel = onnx2mil.build_coreml(conv_chain(), outputs=["/conv1/Conv_output_0"])
    prog = onnx2mil.load_saved_program(onnx2mil.save(mlmodel, tmp_path / "cut.mlpackage"))
    convs = [op for op in prog.functions["main"].operations if op.op_type == "conv"]
    assert len(convs) == 1
    assert list(pipeline.read_name_map(mlmodel)["outputs"]) == ["/conv1/Conv_output_0"]
    with pytest.raises(ValueError, match="not tensors"):
        onnx2mil.build_coreml(conv_chain(), outputs=["nope"])


def test_external_data_next_to_the_model_is_read(tmp_path):
    model = conv_chain()
    path = tmp_path / "ext" / "model.onnx"
    path.parent.mkdir()
    onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                    location="weights.bin", size_threshold=0)
    assert (path.parent / "weights.bin").stat().st_size > 0
    mlmodel = onnx2mil.build_coreml(path, compute_precision="fp32")
    prog = onnx2mil.load_saved_program(onnx2mil.save(mlmodel, tmp_path / "ext.mlpackage"))
    conv1 = next(op for op in prog.functions["main"].operations if op.op_type == "conv")
    expected = numpy_helper.to_array(conv_chain().graph.initializer[0])
    np.testing.assert_array_equal(conv1.weight.val, expected)


def test_failed_save_leaves_nothing_on_disk(tmp_path, monkeypatch):
    mlmodel = onnx2mil.build_coreml(conv_chain())
    real_save = type(mlmodel).save

    def half_write(self, path):
        real_save(self, path)
        raise OSError("disk full")

    monkeypatch.setattr(type(mlmodel), "save", half_write)
    with pytest.raises(onnx2mil.errors.SaveError, match="disk full"):
        onnx2mil.save(mlmodel, tmp_path / "out.mlpackage")
    assert os.listdir(tmp_path) == []


def test_save_replaces_an_existing_package(tmp_path):
    target = tmp_path / "m.mlpackage"
    onnx2mil.save(onnx2mil.build_coreml(conv_chain(cin=3)), target)
    onnx2mil.save(onnx2mil.build_coreml(conv_chain(cin=5)), target)
    prog = onnx2mil.load_saved_program(target)
    assert prog.functions["main"].inputs[pipeline.read_name_map(pipeline.open_model(target))["inputs"]["input.1"]].shape[1] == 5
    assert sorted(os.listdir(tmp_path)) == ["m.mlpackage"]


def test_config_from_yaml_and_bad_variants(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("lowering:\n  conv_1d: as_2d\n")
    mlmodel = onnx2mil.build_coreml(conv_chain(), config=cfg)
    prog = onnx2mil.load_saved_program(onnx2mil.save(mlmodel, tmp_path / "c.mlpackage"))
    ranks = [op.x.rank for op in prog.functions["main"].operations if op.op_type == "conv"]
    assert ranks == [4, 4]
    with pytest.raises(ValueError, match="cannot be 'sideways'"):
        onnx2mil.build_coreml(conv_chain(), config={"lowering": {"conv_1d": "sideways"}})


def test_pipeline_and_config_are_recorded(tmp_path):
    mlmodel = onnx2mil.build_coreml(conv_chain())
    reloaded = pipeline.open_model(onnx2mil.save(mlmodel, tmp_path / "m.mlpackage"))
    recorded = pipeline.read_pipeline(reloaded)
    assert set(pipeline.HAZARDOUS_PASSES) <= set(recorded["removed"])
    assert "common::const_elimination" in recorded["passes"]
    assert reloaded.user_defined_metadata[pipeline.META_VERSION] == onnx2mil.__version__
