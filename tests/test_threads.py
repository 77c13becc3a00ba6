"""``build_coreml`` from several threads at once gives what it gives sequentially (builds serialise on
``pipeline.COREMLTOOLS_LOCK``), and no change to coremltools' process-wide state outlives a call."""
import hashlib
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnx.helper as oh
import pytest
from coremltools.converters.mil.mil import Program
from coremltools.converters.mil.mil import block as mil_block
from onnx import numpy_helper

import onnx2mil
from onnx2mil import models
from onnx2mil.backend.convert import pipeline
from onnx2mil.backend.validation.reference import make_inputs


def conv_transpose_model():
    w = numpy_helper.from_array(np.random.default_rng(3).standard_normal((6, 4, 4)).astype(np.float32), "w")
    b = numpy_helper.from_array(np.linspace(-1, 1, 4, dtype=np.float32), "b")
    graph = oh.make_graph([oh.make_node("ConvTranspose", ["x", "w", "b"], ["y"], name="/up/ConvTranspose",
                                        strides=[2], pads=[1, 1])],
                          "up", [oh.make_tensor_value_info("x", 1, [1, 6, 10])],
                          [oh.make_tensor_value_info("y", 1, [1, 4, 20])], [w, b])
    return oh.make_model(graph, opset_imports=[oh.make_opsetid("", 17)])


def matmul_softmax_model():
    w = numpy_helper.from_array(np.random.default_rng(4).standard_normal((8, 8)).astype(np.float32), "w")
    graph = oh.make_graph([oh.make_node("MatMul", ["x", "w"], ["h"], name="/proj/MatMul"),
                           oh.make_node("Softmax", ["h"], ["y"], name="/softmax", axis=-1)],
                          "attn", [oh.make_tensor_value_info("x", 1, [2, 5, 8])],
                          [oh.make_tensor_value_info("y", 1, [2, 5, 8])], [w])
    return oh.make_model(graph, opset_imports=[oh.make_opsetid("", 17)])


MODELS = {
    "resnet-tiny": lambda: models.build("resnet-tiny"),
    "transformer-tiny": lambda: models.build("transformer-tiny"),
    "conv-transpose": conv_transpose_model,
    "matmul-softmax": matmul_softmax_model,
}
PRECISION = {"resnet-tiny": "fp16", "transformer-tiny": "fp32", "conv-transpose": "fp16", "matmul-softmax": "fp32"}


def package_bytes(name: str, folder: Path) -> dict:
    """Build ``name``, save it, and return every file of the package with its sha256."""
    mlmodel = onnx2mil.build_coreml(MODELS[name](), compute_precision=PRECISION[name])
    path = onnx2mil.save(mlmodel, folder / f"{name}.mlpackage")
    return {str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(path.rglob("*")) if p.is_file()}


def build_save_run(name: str, folder: Path) -> tuple[dict, dict]:
    """The package's files (sha256) and the interpreter's outputs on seeded inputs, read back."""
    files = package_bytes(name, folder)
    outputs = onnx2mil.predict(folder / f"{name}.mlpackage", make_inputs(MODELS[name]()))
    return files, outputs


def test_four_threads_building_different_models_equal_the_sequential_builds(tmp_path):
    sequential = {name: build_save_run(name, tmp_path / "sequential") for name in MODELS}
    rounds = 3
    for r in range(rounds):
        with ThreadPoolExecutor(max_workers=len(MODELS)) as pool:
            futures = {name: pool.submit(build_save_run, name, tmp_path / f"round{r}") for name in MODELS}
            threaded = {name: f.result() for name, f in futures.items()}
        for name, (files, outputs) in threaded.items():
            assert files == sequential[name][0], f"round {r}, {name}: package bytes differ"
            assert outputs.keys() == sequential[name][1].keys()
            for k, v in outputs.items():
                np.testing.assert_array_equal(v, sequential[name][1][k], err_msg=f"round {r}, {name}, {k}")


def test_a_failing_build_in_one_thread_does_not_disturb_the_others(tmp_path):
    bad = conv_transpose_model()
    bad.graph.node[0].input[1] = "x"  # a weight that is not a constant: refused
    expected = package_bytes("matmul-softmax", tmp_path / "alone")
    barrier = threading.Barrier(4)

    def build(i):
        barrier.wait()
        if i % 2:
            with pytest.raises(onnx2mil.UnsupportedOperatorError):
                onnx2mil.build_coreml(bad)
            return None
        return package_bytes("matmul-softmax", tmp_path / f"t{i}")

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(build, range(4)))
    assert results[0] == results[2] == expected


def test_nothing_patched_outlives_a_conversion_even_when_it_fails(monkeypatch):
    log = logging.getLogger("coremltools")
    level, progress, validate = log.level, pipeline._pass_pipeline_module.tqdm, Program.__dict__["validate"]
    real_convert = pipeline.ct.convert
    seen = {}

    def failing_convert(prog, **kwargs):
        seen["tqdm"] = pipeline._pass_pipeline_module.tqdm
        seen["instance validate"] = "validate" in vars(prog)
        real_convert(prog, **kwargs)
        raise RuntimeError("fails after the passes ran")

    monkeypatch.setattr(pipeline.ct, "convert", failing_convert)
    with pytest.raises(onnx2mil.errors.ConversionError, match="fails after the passes ran"):
        onnx2mil.build_coreml(matmul_softmax_model())
    assert seen == {"tqdm": pipeline._no_progress, "instance validate": True}  # quiet while it ran
    assert log.level == level
    assert pipeline._pass_pipeline_module.tqdm is progress
    assert Program.__dict__["validate"] is validate
    assert mil_block.BLOCK_STACK == []


def test_a_build_error_leaves_the_builder_block_stack_empty_and_the_lock_free():
    w = numpy_helper.from_array(np.ones((2, 3, 9), np.float32), "w")  # kernel longer than the input
    graph = oh.make_graph([oh.make_node("Conv", ["x", "w"], ["y"], name="/conv/Conv")], "g",
                          [oh.make_tensor_value_info("x", 1, [1, 3, 4])], [oh.make_tensor_value_info("y", 1, None)], [w])
    with pytest.raises(onnx2mil.BuildError, match="node '/conv/Conv' \\(Conv, opset 17\\)"):
        onnx2mil.build_coreml(oh.make_model(graph, opset_imports=[oh.make_opsetid("", 17)]))
    assert mil_block.BLOCK_STACK == []
    assert not pipeline.COREMLTOOLS_LOCK._is_owned()
