"""Every builder on single-node graphs across its attribute space, against onnxruntime."""
import numpy as np
import pytest

import onnx2mil
from harness import run_ort
from op_cases import all_cases

CASES = all_cases()


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_builder_output_shapes_match_onnxruntime(case, tmp_path):
    model = case.model()
    expected = run_ort(model, case.inputs)
    mlmodel = onnx2mil.build_coreml(model, compute_precision="fp32", config=case.config)
    path = onnx2mil.save(mlmodel, tmp_path / "m.mlpackage")
    prog = onnx2mil.load_saved_program(path)
    outputs = {v.name: v for v in prog.functions["main"].outputs}
    name_map = onnx2mil.backend.pipeline.read_name_map(mlmodel)
    for onnx_name, ref in expected.items():
        var = outputs[name_map["outputs"][onnx_name]]
        assert tuple(var.shape) == ref.shape, onnx_name
