"""Every reference model (tiny sizes) converts and validates layer by layer against onnxruntime,
in fp32 and fp16; BigVGAN with each ConvTranspose1d lowering."""
import pytest

import onnx2mil
from onnx2mil import models

CASES = [("bigvgan-tiny", variant) for variant in ("as_2d", "native", "split_bias")] + [
    ("resnet-tiny", None), ("transformer-tiny", None)]


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
@pytest.mark.parametrize("name,variant", CASES, ids=[f"{n}-{v}" if v else n for n, v in CASES])
def test_reference_model_validates_layer_by_layer(name, variant, precision):
    model = models.build(name)
    config = {"lowering": {"conv_transpose_1d": variant}} if variant else None
    mlmodel = onnx2mil.build_coreml(model, compute_precision=precision, config=config)
    report = onnx2mil.validate(model, mlmodel, inputs=models.example_inputs(name))
    assert report.ok, report.first_divergence
    compared = [layer for layer in report.layers if layer.status == "pass"]
    assert len(compared) > 10
