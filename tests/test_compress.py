"""Weight compression: lowerings kept, compression error told apart from conversion error, layers
ranked, and keeping the most sensitive uncompressed measurably lowers the output error."""
import json

import coremltools as ct
import coremltools.optimize.coreml as cto
import numpy as np
import pytest

import onnx2mil
from onnx2mil import cli, models
from onnx2mil.backend.convert import pipeline
from onnx2mil.backend.validation.compress import CompressionError, compressed_weights
from test_real_exports import tamper

RESNET = "resnet-tiny"


def conv_transposes(mlmodel) -> set:
    prog = pipeline.load_saved_program(mlmodel)
    return {(op.x.rank, op.inputs.get("output_shape") is not None)
            for op in pipeline._all_ops(prog.functions["main"]) if op.op_type == "conv_transpose"}


def test_compress_keeps_the_lowerings_coremltools_compression_undoes():
    mlmodel = onnx2mil.build_coreml(models.build("bigvgan-tiny"), minimum_deployment_target=ct.target.iOS16)
    assert conv_transposes(mlmodel) == {(4, False)}
    config = cto.OptimizationConfig(global_config=cto.OpLinearQuantizerConfig(weight_threshold=64))
    # coremltools' own API re-runs its default passes: output_shape is back (coremltools#2281)
    assert conv_transposes(cto.linear_quantize_weights(mlmodel, config)) == {(4, True)}
    ours = onnx2mil.compress(mlmodel, mode="linear", nbits=8, weight_threshold=64)
    assert conv_transposes(ours) == {(4, False)}
    assert compressed_weights(pipeline.load_saved_program(ours), {op for op in pipeline.read_name_map(ours)["tensors"].values() if op})
    assert pipeline.read_name_map(ours) == pipeline.read_name_map(mlmodel)


@pytest.fixture(scope="module")
def resnet():
    model, feeds = models.build(RESNET), models.example_inputs(RESNET)
    return model, feeds, onnx2mil.build_coreml(model, minimum_deployment_target=ct.target.iOS16)


@pytest.mark.parametrize("mode,nbits", [("linear", 8), ("palettize-uniform", 4)])
def test_compressed_model_validates_with_a_deterministic_ranking(resnet, mode, nbits):
    model, feeds, mlmodel = resnet
    reports = [onnx2mil.validate(model, onnx2mil.compress(mlmodel, mode=mode, nbits=nbits, weight_threshold=256),
                                 inputs=feeds, compression_report=True) for _ in range(2)]
    report = reports[0]
    assert [e["mil_op"] for e in report.compression] == [e["mil_op"] for e in reports[1].compression]
    assert report.first_divergence is None and report.counts.get("fail", 0) == 0
    compressed = [layer for layer in report.layers if layer.compressed]
    assert len(compressed) == len(report.compression) >= 5
    assert all(layer.status in ("pass", "lossy") for layer in compressed)
    assert all(e["uncompressed_local_rel_to_max"] <= 1e-2 for e in report.compression)
    added = [e["added"] for e in report.compression]
    assert added == sorted(added, reverse=True)
    if nbits == 4:
        assert report.counts.get("lossy", 0) >= 1 and "lossy" in report.summary()


def test_a_conversion_fault_in_a_compressed_model_is_still_a_failure(resnet):
    model, feeds, _ = resnet
    faulty, node = tamper(model, RESNET)
    compressed = onnx2mil.compress(onnx2mil.build_coreml(faulty, minimum_deployment_target=ct.target.iOS16),
                                   mode="palettize-uniform", nbits=4, weight_threshold=256)
    report = onnx2mil.validate(model, compressed, inputs=feeds, source=faulty, compression_report=True)
    failing = [layer for layer in report.layers if layer.status == "fail"]
    assert failing and (failing[0].node == node or node in report.first_divergence.looked_through)


def test_keeping_the_most_sensitive_layers_lowers_the_output_error(tmp_path, capsys):
    code = cli.main(["compress", RESNET, "-o", str(tmp_path / "r.mlpackage"), "--mode", "palettize-uniform",
                     "--nbits", "4", "--keep", "3", "--weight-threshold", "256", "--json"])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert len(result["kept"]) == 3
    for name, err in result["output_error"].items():
        assert err < 0.7 * result["output_error_all_compressed"][name]
    assert (tmp_path / "r.mlpackage").is_dir()


def test_bad_compression_requests_are_typed_errors(resnet):
    _, _, mlmodel = resnet
    with pytest.raises(CompressionError, match="iOS18"):
        onnx2mil.compress(mlmodel, mode="linear", nbits=4)
    with pytest.raises(CompressionError, match="mode must be one of"):
        onnx2mil.compress(mlmodel, mode="prune")
    with pytest.raises(CompressionError, match="nbits"):
        onnx2mil.compress(mlmodel, mode="palettize-uniform", nbits=5)
