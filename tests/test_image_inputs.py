"""ct.ImageType inputs, as ct.convert takes them: the preprocessing (scale, per-channel bias) is in
the model, predict and validate take pixels (arrays or PIL images), and what onnx2mil cannot
honour is a typed refusal."""
import coremltools as ct
import numpy as np
import onnx.helper as oh
import pytest
from onnx import numpy_helper
from PIL import Image

import onnx2mil
from onnx2mil import models
from onnx2mil.errors import InputError, OptionError
from harness import run_ort

RESNET = "resnet-tiny"
RGB = dict(scale=1 / 255, bias=[-0.5, -0.4, -0.3], color_layout=ct.colorlayout.RGB)


def pixels(shape, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=shape).astype(np.float32)


def gray_model() -> "onnx.ModelProto":
    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((4, 1, 3, 3)).astype(np.float32), "w")
    graph = oh.make_graph([oh.make_node("Conv", ["image", "w"], ["y"], name="conv", pads=[1, 1, 1, 1])], "gray",
                          [oh.make_tensor_value_info("image", 1, [1, 1, 16, 16])],
                          [oh.make_tensor_value_info("y", 1, [1, 4, 16, 16])], [w])
    return oh.make_model(graph, opset_imports=[oh.make_opsetid("", 17)])


@pytest.mark.parametrize("layout", ["RGB", "BGR"])
def test_image_build_equals_the_tensor_build_fed_the_preprocessed_array(layout):
    model = models.build(RESNET)
    options = dict(RGB, color_layout=getattr(ct.colorlayout, layout))
    image = onnx2mil.build_coreml(model, inputs=[ct.ImageType(name="input", shape=(1, 3, 32, 32), **options)],
                                  compute_precision="fp32")
    kind = image.get_spec().description.input[0].type
    assert kind.WhichOneof("Type") == "imageType" and kind.imageType.width == 32
    x = pixels((1, 3, 32, 32))
    preprocessed = x / 255 + np.array([-0.5, -0.4, -0.3], np.float32).reshape(1, 3, 1, 1)
    expected = run_ort(model, {"input": preprocessed})["logits"]
    got = onnx2mil.predict(image, {"input": x})["logits"]
    assert np.abs(got - expected).max() <= 1e-5 * np.abs(expected).max()
    report = onnx2mil.validate(model, image, inputs={"input": x})
    assert report.ok, report.summary()


def test_grayscale_and_pil_images():
    model = gray_model()
    mlmodel = onnx2mil.build_coreml(model, compute_precision="fp32", inputs=[
        ct.ImageType(name="image", shape=(1, 1, 16, 16), scale=2 / 255, bias=-1.0, color_layout=ct.colorlayout.GRAYSCALE)])
    picture = Image.fromarray(pixels((16, 16), seed=3).astype(np.uint8), mode="L")
    got = onnx2mil.predict(mlmodel, {"image": picture})["y"]
    array = np.asarray(picture, np.float32)[None, None]
    expected = run_ort(model, {"image": array * 2 / 255 - 1})["y"]
    assert np.abs(got - expected).max() <= 1e-5 * np.abs(expected).max()
    assert onnx2mil.validate(model, mlmodel, inputs={"image": picture}).ok


@pytest.mark.parametrize("image, message", [
    (ct.ImageType(name="input", shape=(1, 3, 32, 32), channel_first=False), "channel_first=False"),
    (ct.ImageType(name="input", shape=(1, 3, 32, 32), color_layout=ct.colorlayout.GRAYSCALE),
     "colour layout G has 1 channel"),
])
def test_image_options_onnx2mil_cannot_honour_are_refused(image, message):
    with pytest.raises(InputError, match=message):
        onnx2mil.build_coreml(models.build(RESNET), inputs=[image])


def image_model(channels: int) -> "onnx.ModelProto":
    """(1, 3, 8, 8) -> a 1x1 conv to ``channels`` -> sigmoid * 255: an image-to-image model."""
    w = numpy_helper.from_array(np.random.default_rng(1).standard_normal((channels, 3, 1, 1)).astype(np.float32), "w")
    k = numpy_helper.from_array(np.array(255.0, np.float32), "k")
    graph = oh.make_graph([oh.make_node("Conv", ["x", "w"], ["c"], name="conv"),
                           oh.make_node("Sigmoid", ["c"], ["s"], name="sigmoid"),
                           oh.make_node("Mul", ["s", "k"], ["image"], name="to_pixels")], "img2img",
                          [oh.make_tensor_value_info("x", 1, [1, 3, 8, 8])],
                          [oh.make_tensor_value_info("image", 1, [1, channels, 8, 8])], [w, k])
    return oh.make_model(graph, opset_imports=[oh.make_opsetid("", 17)])


@pytest.mark.parametrize("layout, channels, precision", [
    ("RGB", 3, "fp32"), ("BGR", 3, "fp16"), ("GRAYSCALE", 1, "fp32"), ("GRAYSCALE_FLOAT16", 1, "fp16")])
def test_image_outputs_as_ct_convert_makes_them(layout, channels, precision, tmp_path):
    model = image_model(channels)
    x = {"x": np.random.default_rng(0).standard_normal((1, 3, 8, 8)).astype(np.float32)}
    color = getattr(ct.colorlayout, layout)
    image = onnx2mil.build_coreml(model, outputs=[ct.ImageType(name="image", color_layout=color)],
                                  compute_precision=precision)
    path = onnx2mil.save(image, tmp_path / "m.mlpackage")
    out = ct.models.MLModel(str(path), skip_model_load=True).get_spec().description.output[0]
    assert out.name == "image" and out.type.WhichOneof("Type") == "imageType"
    assert (out.type.imageType.width, out.type.imageType.height) == (8, 8)
    assert ct.proto.FeatureTypes_pb2.ImageFeatureType.ColorSpace.Name(out.type.imageType.colorSpace) == \
        {"GRAYSCALE_FLOAT16": "GRAYSCALE_FLOAT16", "GRAYSCALE": "GRAYSCALE"}.get(layout, layout)
    # not deprocessed (as ct.convert): the interpreter returns the (1, C, H, W) values CoreML writes as pixels
    tensor = onnx2mil.build_coreml(model, compute_precision=precision)
    got, same = onnx2mil.predict(path, x)["image"], onnx2mil.predict(tensor, x)["image"]
    assert got.shape == (1, channels, 8, 8)
    np.testing.assert_allclose(got, same, rtol=1e-5 if precision == "fp32" else 2e-3)
    assert onnx2mil.validate(model, image, inputs=x).ok


@pytest.mark.parametrize("output, message", [
    (ct.ImageType(name="image", scale=1 / 255), "not deprocessed"),
    (ct.ImageType(name="image", bias=[1.0, 0, 0]), "not deprocessed"),
    (ct.ImageType(name="image", channel_first=True), "channel_first"),
    (ct.ImageType(name="image", shape=(1, 3, 8, 8)), "no shape"),
    (ct.ImageType(name="image", color_layout=ct.colorlayout.GRAYSCALE), r"needs shape \(1, 1, H, W\)"),
    (ct.ImageType(name="c_flat"), "rank 4"),
])
def test_image_outputs_ct_convert_would_refuse_are_typed_refusals(output, message):
    model = image_model(3)
    model.graph.node.append(oh.make_node("Flatten", ["c"], ["c_flat"], name="flatten"))
    with pytest.raises(OptionError, match=message) as e:
        onnx2mil.build_coreml(model, outputs=[output])
    assert output.name in str(e.value)


def test_descriptions_come_from_the_onnx_model_and_kwargs(tmp_path):
    model = gray_model()
    model.graph.doc_string = "a 3x3 edge filter"
    model.graph.input[0].doc_string = "grayscale frame"
    model.graph.output[0].doc_string = "four feature maps"
    model.model_version = 7
    model.producer_name, model.producer_version = "pytorch", "2.13.0"
    oh.set_model_props(model, {"author": "Ada", "license": "MIT", "dataset": "frames-v2"})
    path = onnx2mil.save(onnx2mil.build_coreml(model, license="Apache-2.0"), tmp_path / "m.mlpackage")
    spec = ct.models.MLModel(str(path), skip_model_load=True).get_spec()
    meta = spec.description.metadata
    assert (meta.author, meta.license, meta.shortDescription, meta.versionString) == (
        "Ada", "Apache-2.0", "a 3x3 edge filter", "7")
    assert spec.description.input[0].shortDescription == "grayscale frame"
    assert spec.description.output[0].shortDescription == "four feature maps"
    assert meta.userDefined["onnx.producer"] == "pytorch 2.13.0" and meta.userDefined["onnx.dataset"] == "frames-v2"
