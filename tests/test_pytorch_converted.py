"""onnx's pytorch-converted PReLU cases (opset 6: a (C,) slope is one value per channel of axis 1,
before ONNX had broadcasting) through build -> interpreter, against onnx's expected outputs."""
import glob
import os

import numpy as np
import onnx
import onnx.backend.test
import pytest
from onnx import numpy_helper

import onnx2mil

ROOT = os.path.join(os.path.dirname(onnx.backend.test.__file__), "data", "pytorch-converted")
CASES = sorted(glob.glob(os.path.join(ROOT, "test_PReLU*")))


@pytest.mark.parametrize("case", CASES, ids=[os.path.basename(c) for c in CASES])
def test_prelu_matches_onnx_expected_outputs(case):
    model = onnx.load(os.path.join(case, "model.onnx"))
    for data in sorted(glob.glob(os.path.join(case, "test_data_set_*"))):
        x = numpy_helper.to_array(onnx.load_tensor(os.path.join(data, "input_0.pb")))
        expected = numpy_helper.to_array(onnx.load_tensor(os.path.join(data, "output_0.pb")))
        mlmodel = onnx2mil.build_coreml(model, compute_precision="fp32")
        got = onnx2mil.predict(mlmodel, {model.graph.input[0].name: x})[model.graph.output[0].name]
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_the_multiparam_cases_are_there():
    assert {os.path.basename(c) for c in CASES} >= {f"test_PReLU_{d}d_multiparam" for d in (1, 2, 3)}
