"""The reference models: valid ONNX, run in onnxruntime, and the BigVGAN pieces match an independent
numpy reference (Kaiser window from the Bessel series, transposed convolution by scatter-add)."""
import math

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from harness import run_ort
from onnx2mil import models
from onnx2mil.models import bigvgan

RUN_IN_TESTS = [n for n in models.names() if n != "bigvgan-qwen2.5-omni"]   # 115 M parameters
EXPECTED_OUTPUT = {
    "bigvgan-tiny": (1, 1, 16 * 5 * 3 * 2),
    "resnet-tiny": (1, 10),
    "resnet-18": (1, 1000),
    "transformer-tiny": (1, 16, 64),
}


def initializers(model):
    return {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}


@pytest.mark.parametrize("name", RUN_IN_TESTS)
def test_model_is_valid_onnx_and_runs_in_onnxruntime(name):
    model = models.build(name)
    onnx.checker.check_model(model, full_check=True)
    assert model.opset_import[0].version == 17
    outputs = run_ort(model, models.example_inputs(name))
    (out,) = outputs.values()
    assert out.shape == EXPECTED_OUTPUT[name]
    assert np.isfinite(out).all()
    assert out.std() > 1e-3, "output is constant: weights or inputs are degenerate"


@pytest.mark.parametrize("name", RUN_IN_TESTS)
def test_build_is_deterministic_per_seed(name):
    a, b, c = (initializers(models.build(name, seed=s)) for s in (0, 0, 1))
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert any(not np.array_equal(a[k], c[k]) for k in a)


def test_registry_has_the_documented_models():
    assert {"bigvgan-tiny", "bigvgan-qwen2.5-omni", "resnet-tiny", "transformer-tiny"} <= set(models.names())
    assert models.DEFAULT in models.names()
    with pytest.raises(KeyError, match="unknown reference model"):
        models.build("bigvgan-huge")


def test_bigvgan_tiny_ups_stack_has_biased_conv_transposes_and_growing_lengths():
    model = models.build("bigvgan-tiny")
    cfg = models.config("bigvgan-tiny")
    inferred = onnx.shape_inference.infer_shapes(model)
    shapes = {vi.name: [d.dim_value for d in vi.type.tensor_type.shape.dim] for vi in inferred.graph.value_info}
    weights = initializers(model)
    nodes = {n.name: n for n in model.graph.node}
    length, channels = cfg.frames, cfg.upsample_initial_channel
    for i, (rate, kernel) in enumerate(zip(cfg.upsample_rates, cfg.upsample_kernel_sizes)):
        node = nodes[f"/ups.{i}/ups.{i}.0/ConvTranspose"]
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        assert attrs["strides"] == [rate] and attrs["kernel_shape"] == [kernel]
        assert attrs["pads"] == [(kernel - rate) // 2] * 2
        assert list(node.input[1:]) == [f"ups.{i}.0.weight", f"ups.{i}.0.bias"]
        bias = weights[f"ups.{i}.0.bias"]
        assert bias.shape == (channels // 2,) and np.all(bias != 0)
        length, channels = length * rate, channels // 2
        assert shapes[node.output[0]] == [1, channels, length]


def test_every_conv_bias_is_nonzero():
    for name in RUN_IN_TESTS:
        model = models.build(name)
        weights = initializers(model)
        for node in model.graph.node:
            if node.op_type in ("Conv", "ConvTranspose", "Gemm") and len(node.input) > 2:
                assert np.all(weights[node.input[2]] != 0), node.name


def bessel_i0(x):
    """Modified Bessel function of the first kind, order 0, by its power series."""
    x = np.asarray(x, dtype=np.float64)
    total, term = np.ones_like(x), np.ones_like(x)
    for k in range(1, 40):
        term = term * (x / (2 * k)) ** 2
        total = total + term
    return total


def reference_lowpass(taps=12, cutoff=0.25, half_width=0.3):
    """Kaiser-windowed sinc written from the textbook: window I0(b*sqrt(1-r^2))/I0(b), r in [-1, 1]."""
    attenuation = 2.285 * (taps // 2 - 1) * math.pi * (4 * half_width) + 7.95
    assert attenuation > 50   # Kaiser's high-attenuation branch
    b = 0.1102 * (attenuation - 8.7)
    r = np.linspace(-1.0, 1.0, taps)
    window = bessel_i0(b * np.sqrt(1 - r ** 2)) / bessel_i0(b)
    t = np.arange(taps) - (taps - 1) / 2
    h = window * np.where(t == 0, 2 * cutoff, np.sin(2 * math.pi * cutoff * t) / (math.pi * np.where(t == 0, 1, t)))
    return h / h.sum()


def test_kaiser_sinc_filter_matches_textbook_design():
    taps = reference_lowpass()
    model = bigvgan.activation1d_model(channels=3, length=20)
    weights = initializers(model)
    for name in ("activation.upsample.filter", "activation.downsample.lowpass.filter"):
        assert weights[name].shape == (3, 1, 12)
        np.testing.assert_allclose(weights[name][:, 0, :], np.tile(taps, (3, 1)), rtol=1e-5, atol=1e-7)
    response = np.abs(np.exp(-2j * np.pi * np.outer([0.0, 0.5], np.arange(12))) @ taps)
    assert abs(response[0] - 1) < 1e-6 and response[1] < 0.05   # unit DC gain, Nyquist suppressed


def reference_activation1d(x, alpha_log, beta_log, taps, ratio=2):
    """BigVGAN Activation1d(SnakeBeta) in numpy: up x2, SnakeBeta, low-pass down x2."""
    k = len(taps)
    pad = k // ratio - 1
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad)), mode="edge").astype(np.float64)
    up = np.zeros(xp.shape[:2] + ((xp.shape[2] - 1) * ratio + k,))
    for i in range(xp.shape[2]):                    # transposed conv: each sample scatters the taps
        up[..., i * ratio:i * ratio + k] += xp[..., i:i + 1] * taps
    up *= ratio
    left = pad * ratio + (k - ratio) // 2
    right = pad * ratio + (k - ratio + 1) // 2
    up = up[..., left:up.shape[2] - right]
    a = np.exp(alpha_log)[None, :, None]
    b = np.exp(beta_log)[None, :, None]
    snake = up + 1.0 / (b + 1e-9) * np.sin(a * up) ** 2
    zp = np.pad(snake, ((0, 0), (0, 0), (k // 2 - 1, k // 2)), mode="edge")
    n_out = (zp.shape[2] - k) // ratio + 1
    return np.stack([zp[..., j * ratio:j * ratio + k] @ taps for j in range(n_out)], axis=-1)


@pytest.mark.parametrize("length", [7, 20])
def test_activation1d_subgraph_matches_numpy_reference(length):
    channels = 5
    model = bigvgan.activation1d_model(channels=channels, length=length, seed=3)
    onnx.checker.check_model(model, full_check=True)
    weights = initializers(model)
    x = np.random.default_rng(1).normal(0, 1.5, size=(1, channels, length)).astype(np.float32)
    got = run_ort(model, {"x": x})["y"]
    want = reference_activation1d(x, weights["activation.act.alpha"], weights["activation.act.beta"],
                                  reference_lowpass())
    assert got.shape == (1, channels, length)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def conv1d(x, w, b=None, pad=0, dilation=1):
    k = w.shape[2]
    xp = np.pad(x[0], ((0, 0), (pad, pad)))
    n_out = xp.shape[1] - dilation * (k - 1)
    cols = np.stack([xp[:, j * dilation:j * dilation + n_out] for j in range(k)], axis=-1)
    y = np.einsum("ock,ctk->ot", w, cols)
    return (y if b is None else y + b[:, None])[None]


def conv_transpose1d(x, w, b, stride, pad):
    k = w.shape[2]
    full = np.zeros((w.shape[1], (x.shape[2] - 1) * stride + k))
    for t in range(x.shape[2]):
        full[:, t * stride:t * stride + k] += np.einsum("c,cok->ok", x[0, :, t], w)
    return (full[:, pad:full.shape[1] - pad] + b[:, None])[None]


def reference_bigvgan(mel, p, cfg):
    """Qwen2.5-Omni's Token2WavBigVGAN forward in numpy, from the module's description."""
    taps = reference_lowpass()

    def act(x, prefix):
        return reference_activation1d(x, p[f"{prefix}.act.alpha"], p[f"{prefix}.act.beta"], taps)

    db = 20 * np.log10(np.maximum(np.exp(mel.astype(np.float64)), np.exp(-115 / 20 * np.log(10)))) - 20
    x = np.clip(2 * (db + 115) / 115 - 1, -1, 1)
    x = conv1d(x, p["conv_pre.weight"], p["conv_pre.bias"], pad=3)
    n = len(cfg.resblock_kernel_sizes)
    for i, (rate, k) in enumerate(zip(cfg.upsample_rates, cfg.upsample_kernel_sizes)):
        x = conv_transpose1d(x, p[f"ups.{i}.0.weight"], p[f"ups.{i}.0.bias"], rate, (k - rate) // 2)
        total = 0
        for j, (kr, dilations) in enumerate(zip(cfg.resblock_kernel_sizes, cfg.resblock_dilation_sizes)):
            r, y = f"resblocks.{i * n + j}", x
            for m, d in enumerate(dilations):
                h = act(y, f"{r}.activations.{2 * m}")
                h = conv1d(h, p[f"{r}.convs1.{m}.weight"], p[f"{r}.convs1.{m}.bias"], (kr * d - d) // 2, d)
                h = act(h, f"{r}.activations.{2 * m + 1}")
                y = y + conv1d(h, p[f"{r}.convs2.{m}.weight"], p[f"{r}.convs2.{m}.bias"], (kr - 1) // 2)
            total = total + y
        x = total / n
    x = conv1d(act(x, "activation_post"), p["conv_post.weight"], pad=3)
    return np.clip(x, -1, 1)


def test_bigvgan_tiny_matches_numpy_reference_of_the_torch_module():
    model = models.build("bigvgan-tiny")
    inputs = models.example_inputs("bigvgan-tiny")
    got = run_ort(model, inputs)["waveform"]
    want = reference_bigvgan(inputs["mel"], initializers(model), models.config("bigvgan-tiny"))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_snake_beta_is_exported_as_primitive_ops():
    model = bigvgan.activation1d_model(channels=2, length=8)
    ops = {n.op_type for n in model.graph.node if n.name.startswith("/activation/act/")}
    assert {"Exp", "Mul", "Sin", "Pow", "Reciprocal", "Add"} <= ops
    pads = [n for n in model.graph.node if n.op_type == "Pad"]
    assert len(pads) == 2 and all(onnx.helper.get_attribute_value(n.attribute[0]) == b"edge" for n in pads)


def test_qwen_size_has_115m_parameters():
    # Qwen2.5-Omni token2wav BigVGAN: 115,443,504 parameters (filters are non-persistent buffers).
    assert models.parameter_count("bigvgan-qwen2.5-omni") == 115_443_504
    model = models.build("bigvgan-qwen2.5-omni")
    assert models.counted_parameters(model, "bigvgan-qwen2.5-omni") == 115_443_504
    assert [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim] == [1, 80, 32]


def test_resnet18_parameter_count_matches_torchvision():
    assert models.parameter_count("resnet-18") == 11_689_512      # torchvision.models.resnet18
    assert models.counted_parameters(models.build("resnet-18"), "resnet-18") == 11_689_512


def test_counted_parameters_match_config_for_small_models():
    for name in RUN_IN_TESTS:
        assert models.counted_parameters(models.build(name), name) == models.parameter_count(name), name


def test_save_writes_external_data_for_large_weights(tmp_path, monkeypatch):
    monkeypatch.setattr(models, "EXTERNAL_DATA_BYTES", 0)
    path = models.save("bigvgan-tiny", tmp_path / "m.onnx")
    data = tmp_path / "m.onnx.data"
    first_size = data.stat().st_size
    assert first_size > 0
    models.save("bigvgan-tiny", path)                     # overwriting must not append to the data
    assert data.stat().st_size == first_size
    loaded = onnx.load(str(path))
    inputs = models.example_inputs("bigvgan-tiny")
    np.testing.assert_array_equal(run_ort(loaded, inputs)["waveform"],
                                  run_ort(models.build("bigvgan-tiny"), inputs)["waveform"])
