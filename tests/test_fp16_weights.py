"""fp16 rounding of depthwise conv weights that keeps each output's tap sum (its gain), against
nearest rounding: the sums, the per-tap bound, and a deep BigVGAN whose fp16 output it brings
within tolerance of onnxruntime."""
from __future__ import annotations

import coremltools as ct
import numpy as np
import pytest

import onnx2mil
from harness import rand, run_ort
from onnx2mil.backend.convert.fp16_weights import conv_sum_groups, round_keeping_sums
from onnx2mil.models import bigvgan
from test_dynamic_shapes import symbolic_time

LOW_PASS = bigvgan.kaiser_sinc_filter(0.5 / bigvgan.RATIO, 0.6 / bigvgan.RATIO, bigvgan.FILTER_TAPS)


def sums(weight, groups) -> np.ndarray:
    return np.bincount(groups.reshape(-1), weight.astype(np.float64).reshape(-1))


def fp16_steps(rounded, weight) -> np.ndarray:
    """How many fp16 steps each rounded tap lies from the tap's nearest fp16 value."""
    nearest = weight.astype(np.float16)
    return np.abs(rounded.astype(np.float64) - nearest.astype(np.float64)) / np.spacing(nearest).astype(np.float64)


@pytest.mark.parametrize("transposed", [True, False], ids=["upsample", "downsample"])
def test_anti_aliasing_filter_keeps_its_gain(transposed):
    """BigVGAN's low-pass: nearest fp16 rounding takes 2.3e-4 off the gain of each polyphase phase
    (the upsampling conv_transpose) and of the whole filter (the strided downsampling conv)."""
    weight = np.tile(LOW_PASS, (6, 1, 1))
    groups = conv_sum_groups(weight.shape, transposed=transposed, groups=6, strides=[2], dilations=[1])
    exact = sums(weight, groups)
    nearest = sums(weight.astype(np.float16), groups)
    assert np.abs(nearest / exact - 1).min() > 2e-4
    rounded = round_keeping_sums(weight, groups)
    assert rounded.dtype == np.float32 and np.array_equal(rounded.astype(np.float16).astype(np.float32), rounded)
    assert np.abs(sums(rounded, groups) / exact - 1).max() < 1e-8
    assert fp16_steps(rounded, weight).max() <= 1


def test_sum_groups_of_a_transposed_conv_are_output_channel_and_phase():
    """ConvTranspose weight (C_in, C_out/groups, k), stride 3, dilation 2: tap t feeds the outputs
    of phase 2t mod 3; the input channels of a group all feed the same output channels."""
    groups = conv_sum_groups((4, 2, 5), transposed=True, groups=2, strides=[3], dilations=[2])
    phases = [0, 2, 1, 0, 2]
    for c_in in range(4):
        for j in range(2):
            out_channel = (c_in // 2) * 2 + j
            assert groups[c_in, j].tolist() == [out_channel * 3 + p for p in phases]
    conv = conv_sum_groups((3, 1, 4), transposed=False)
    assert conv[:, 0].tolist() == [[0] * 4, [1] * 4, [2] * 4]


def test_random_weights_keep_their_sums_zeros_and_range():
    rng = np.random.default_rng(0)
    weight = rng.normal(0, 0.1, (16, 1, 9)).astype(np.float32)
    weight[:, :, 4] = 0.0
    groups = conv_sum_groups(weight.shape, transposed=False)
    rounded = round_keeping_sums(weight, groups)
    err_nearest = np.abs(sums(weight.astype(np.float16), groups) - sums(weight, groups))
    err_kept = np.abs(sums(rounded, groups) - sums(weight, groups))
    assert np.all(err_kept <= err_nearest) and err_kept.mean() < err_nearest.mean() / 4, (err_kept, err_nearest)
    assert np.all(rounded[:, :, 4] == 0)
    assert fp16_steps(rounded, weight).max() <= 1
    beyond = np.full((2, 1, 3), 7e4, dtype=np.float32)
    assert round_keeping_sums(beyond, conv_sum_groups(beyond.shape, transposed=False)) is beyond


def test_deep_resampling_at_fp16_stays_within_tolerance_of_onnxruntime():
    """BigVGAN's anti-aliased resampling (UpSample1d -> DownSample1d) 24 times in series, built once
    with a RangeDim: each nearest-rounded low-pass pair scales the signal by 1 - 4.6e-4, 24 of them
    put the output 1.02-1.21% off onnxruntime; keeping the tap sums leaves 0.15-0.25%."""
    model = symbolic_time(bigvgan.resampling_model(channels=4, length=16, depth=24))
    errors = {}
    for rounding in ("keep_sums", "nearest"):
        mlmodel = onnx2mil.build_coreml(
            model, inputs=[ct.TensorType(name="x", shape=(1, 4, ct.RangeDim(16, 256, default=16)))],
            compute_precision="fp16", config={"precision": {"fp16_depthwise_weights": rounding}})
        errors[rounding] = []
        for length in (16, 17, 64, 256):
            feeds = {"x": rand(1, 4, length, seed=length)}
            ref, got = run_ort(model, feeds)["y"], onnx2mil.predict(mlmodel, feeds)["y"]
            errors[rounding].append(float(np.abs(got.astype(np.float64) - ref).max() / np.abs(ref).max()))
            if rounding == "keep_sums" and length in (17, 256):
                report = onnx2mil.validate(model, mlmodel, inputs=feeds)
                assert report.ok, (length, report.summary())
    assert max(errors["keep_sums"]) <= 0.01, errors
    assert max(errors["nearest"]) > 0.01, errors
    assert all(n > 3 * k for n, k in zip(errors["nearest"], errors["keep_sums"])), errors
