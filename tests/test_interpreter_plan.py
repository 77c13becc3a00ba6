"""The interpreter's planned fast paths change no number: each kernel specialization
(``kernels/registry.py``) gives bit-identical values to its kernel — which the op tests check
against onnxruntime and coremltools — on every var of the reference models, at fp32 and fp16,
BigVGAN with each ConvTranspose1d lowering (rank-3 and rank-4 conv_transpose); the pad
specialization reproduces np.pad's edge and reflect values on random shapes."""
import numpy as np
import pytest

import onnx2mil
from onnx2mil import models
from onnx2mil.backend.convert import pipeline
from onnx2mil.backend.interpreter import core, run_program
from onnx2mil.backend.interpreter.kernels.tensor_operation import _pad_fills

CASES = [("bigvgan-tiny", "as_2d"), ("bigvgan-tiny", "native"), ("resnet-tiny", None), ("transformer-tiny", None)]


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
@pytest.mark.parametrize("name,variant", CASES, ids=[f"{n}-{v}" if v else n for n, v in CASES])
def test_specializations_bit_identical_to_kernels(name, variant, precision, monkeypatch):
    config = {"lowering": {"conv_transpose_1d": variant}} if variant else None
    mlmodel = onnx2mil.build_coreml(models.build(name), compute_precision=precision, config=config)
    feeds = models.example_inputs(name)
    name_map = pipeline.read_name_map(mlmodel)
    inputs = {name_map["inputs"][k]: v for k, v in feeds.items()}
    prog = pipeline.load_saved_program(mlmodel)
    planned = run_program(prog, inputs, capture=True)
    monkeypatch.setattr(core, "SPECIALIZERS", {})
    kernels_only = run_program(pipeline.load_saved_program(mlmodel), inputs, capture=True)
    # the generated forward (run_program without capture, predict) of the planned program too
    static = core.static_inputs(prog)
    assert core._plan_for(prog, "main")[0].forward is not None
    forward = core.run_checked(prog, {k: v.astype(static[k][0]) for k, v in inputs.items()})
    for var, got in forward.items():
        assert got.dtype == kernels_only[var].dtype and np.array_equal(got, kernels_only[var], equal_nan=True), var
    assert planned.keys() == kernels_only.keys()
    for var, expected in kernels_only.items():
        got = planned[var]
        assert got.dtype == expected.dtype and got.shape == expected.shape, var
        assert np.array_equal(got, expected, equal_nan=got.dtype.kind == "f"), var


@pytest.mark.parametrize("mode", ["edge", "reflect"])
def test_pad_fills_match_numpy_pad(mode):
    rng = np.random.default_rng(0)
    checked = 0
    for _ in range(400):
        rank = int(rng.integers(1, 5))
        shape = tuple(int(d) for d in rng.integers(1, 8, rank))
        widths = [(int(rng.integers(0, 4)), int(rng.integers(0, 4))) for _ in range(rank)]
        x = rng.standard_normal(shape).astype(np.float32)
        fills = _pad_fills(shape, widths, mode)
        if fills is None:  # np.pad itself runs (reflections wider than a dim)
            continue
        out_shape, interior, copies = fills
        out = np.empty(out_shape, np.float32)
        out[interior] = x
        for target, source in copies:
            out[target] = out[source]
        assert np.array_equal(out, np.pad(x, widths, mode=mode)), (shape, widths)
        checked += 1
    assert checked > 50


def test_predict_fast_path_equals_checked_path():
    """predict skips its input checks for numpy arrays of exactly the program's dtypes and static
    shapes: same values as the checked path (taken for anything else), and anything else is still
    checked (converted or refused)."""
    from types import MappingProxyType

    from onnx2mil.errors import InputError, InputShapeError

    mlmodel = onnx2mil.build_coreml(models.build("transformer-tiny"), compute_precision="fp32")
    feeds = models.example_inputs("transformer-tiny")
    (name, value), = feeds.items()
    fast = onnx2mil.predict(mlmodel, feeds)
    checked = onnx2mil.predict(mlmodel, MappingProxyType(feeds))      # not a dict: the checked path
    converted = onnx2mil.predict(mlmodel, {name: value.astype(np.float64)})  # narrowed to float32 first
    assert fast.keys() == checked.keys() == converted.keys()
    for key in fast:
        assert np.array_equal(fast[key], checked[key]) and np.array_equal(fast[key], converted[key])
    with pytest.raises(InputShapeError):
        onnx2mil.predict(mlmodel, {name: value[:, :3]})
    with pytest.raises(InputError):
        onnx2mil.predict(mlmodel, {name: value, "extra": value})
    with pytest.raises(InputError):
        onnx2mil.predict(mlmodel, {name: value.astype(np.int32)})
