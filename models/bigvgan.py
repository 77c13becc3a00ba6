"""BigVGAN generator as in Qwen2.5-Omni's token2wav (``Qwen2_5OmniToken2WavBigVGANModel``), written
as ``torch.onnx.export`` would emit it at opset 17 with seeded random weights.

mel -> [mel preprocessing: Exp, Clip, Log/ln10, dB normalisation, Clip] -> conv_pre ->
for each upsampling stage: ConvTranspose1d (``ups.i.0``) -> mean of AMP blocks, one per resblock
kernel -> anti-aliased SnakeBeta -> conv_post (no bias) -> Clip to [-1, 1].

Anti-aliased activation (``Activation1d``): UpSample1d (replicate Pad, depthwise ConvTranspose with a
Kaiser-windowed sinc, times the ratio, Slice) -> SnakeBeta -> DownSample1d (replicate Pad, depthwise
strided Conv with the same low-pass design). SnakeBeta(x) = x + 1/(exp(beta)+1e-9) * sin(exp(alpha)*x)^2.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Union

import numpy as np
import onnx

from ._torch_like import TorchLikeGraph, initializer_elements, state_dict_prefix

RATIO = 2            # Activation1d up/down ratio
FILTER_TAPS = 12     # Activation1d up/down kernel size
SNAKE_EPS = 1e-9     # SnakeBeta's no_div_by_zero
MIN_DB = -115.0      # process_mel_spectrogram: amplitude floor and normalisation range
RESIDUAL_GAIN = 0.5  # scale of each residual branch's last conv: keeps deep stacks out of saturation
BUFFER_SUFFIX = (".filter",)   # non-persistent buffers: constants, not parameters


@dataclass(frozen=True)
class BigVGANConfig:
    mel_dim: int
    upsample_initial_channel: int
    upsample_rates: tuple[int, ...]
    upsample_kernel_sizes: tuple[int, ...]
    resblock_kernel_sizes: tuple[int, ...]
    resblock_dilation_sizes: tuple[tuple[int, ...], ...]
    frames: int                      # static input length (mel frames)
    process_mel: bool = True         # Qwen's exp -> dB -> [-1, 1] normalisation before conv_pre

    def channels(self, stage: int) -> int:
        """Channels after ``stage`` upsampling layers (stage 0 = after conv_pre)."""
        return self.upsample_initial_channel // (2 ** stage)

    @property
    def hop(self) -> int:
        return int(np.prod(self.upsample_rates))

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (1, self.mel_dim, self.frames)

    @property
    def output_shape(self) -> tuple[int, int, int]:
        return (1, 1, self.frames * self.hop)


SIZES = {
    "tiny": BigVGANConfig(
        mel_dim=8, upsample_initial_channel=32, upsample_rates=(5, 3, 2), upsample_kernel_sizes=(11, 7, 4),
        resblock_kernel_sizes=(3, 7), resblock_dilation_sizes=((1, 3), (1, 3)), frames=16),
    "qwen2.5-omni": BigVGANConfig(
        mel_dim=80, upsample_initial_channel=1536, upsample_rates=(5, 3, 2, 2, 2, 2),
        upsample_kernel_sizes=(11, 7, 4, 4, 4, 4), resblock_kernel_sizes=(3, 7, 11),
        resblock_dilation_sizes=((1, 3, 5), (1, 3, 5), (1, 3, 5)), frames=32),
}


def kaiser_sinc_filter(cutoff: float, half_width: float, kernel_size: int) -> np.ndarray:
    """Kaiser-windowed sinc low-pass (BigVGAN's ``kaiser_sinc_filter1d``), normalised to sum 1.

    Kaiser beta from Kaiser's empirical formula for the attenuation of a filter with transition
    band ``4 * half_width``; taps sit at half-integer times for an even ``kernel_size``."""
    half = kernel_size // 2
    attenuation = 2.285 * (half - 1) * math.pi * (4 * half_width) + 7.95
    if attenuation > 50.0:
        beta = 0.1102 * (attenuation - 8.7)
    elif attenuation >= 21.0:
        beta = 0.5842 * (attenuation - 21) ** 0.4 + 0.07886 * (attenuation - 21.0)
    else:
        beta = 0.0
    window = np.kaiser(kernel_size, beta)          # symmetric, as torch.kaiser_window(periodic=False)
    if kernel_size % 2 == 0:
        t = np.arange(-half, half) + 0.5
    else:
        t = np.arange(kernel_size) - half
    taps = 2 * cutoff * window * np.sinc(2 * cutoff * t)
    return (taps / taps.sum()).astype(np.float32)


def parameter_count(cfg: BigVGANConfig) -> int:
    """Parameters of the generator from its config (the filters are buffers, not parameters)."""
    n = cfg.mel_dim * cfg.channels(0) * 7 + cfg.channels(0)
    for i, k in enumerate(cfg.upsample_kernel_sizes):
        c_in, c = cfg.channels(i), cfg.channels(i + 1)
        n += c_in * c * k + c
        for kr, dilations in zip(cfg.resblock_kernel_sizes, cfg.resblock_dilation_sizes):
            n += len(dilations) * (2 * (c * c * kr + c) + 2 * 2 * c)   # conv1, conv2, 2 x (alpha, beta)
    c_last = cfg.channels(len(cfg.upsample_rates))
    return n + 2 * c_last + c_last * 7


class _BigVGANWriter:
    """Emits the generator's modules into a TorchLikeGraph, one method per torch module.

    Weights are uniform with variance 1/fan_in (the signal keeps its scale through the stack), the
    last conv of each residual branch scaled by RESIDUAL_GAIN, so the waveform spans most of
    [-1, 1] without saturating; biases use torch's default bound 1/sqrt(fan_in)."""

    def __init__(self, g: TorchLikeGraph):
        self.g = g
        self.up_filter = kaiser_sinc_filter(0.5 / RATIO, 0.6 / RATIO, FILTER_TAPS)
        self.down_filter = kaiser_sinc_filter(0.5 / RATIO, 0.6 / RATIO, FILTER_TAPS)

    def conv1d(self, scope, x, c_in, c_out, k, *, padding, dilation=1, bias=True, gain=1.0):
        g = self.g
        fan_in = c_in * k
        name = state_dict_prefix(scope)
        inputs = [x, g.param(f"{name}.weight", g.uniform((c_out, c_in, k), gain * math.sqrt(3.0 / fan_in)))]
        if bias:
            inputs.append(g.param(f"{name}.bias", g.uniform((c_out,), 1.0 / math.sqrt(fan_in))))
        return g.op(scope, "Conv", inputs, dilations=[dilation], group=1, kernel_shape=[k],
                    pads=[padding, padding], strides=[1])

    def conv_transpose1d(self, scope, x, c_in, c_out, k, stride):
        g = self.g
        fan_in = c_out * k       # torch's fan-in of a ConvTranspose weight (in, out, k)
        name = state_dict_prefix(scope)
        weight = g.param(f"{name}.weight", g.uniform((c_in, c_out, k), math.sqrt(3.0 / fan_in)))
        bias = g.param(f"{name}.bias", g.uniform((c_out,), 1.0 / math.sqrt(fan_in)))
        pad = (k - stride) // 2
        return g.op(scope, "ConvTranspose", [x, weight, bias], dilations=[1], group=1, kernel_shape=[k],
                    pads=[pad, pad], strides=[stride])

    def snake_beta(self, scope, x, channels):
        g = self.g
        name = state_dict_prefix(scope)
        alpha = g.param(f"{name}.alpha", g.uniform((channels,), 0.5))
        beta = g.param(f"{name}.beta", g.uniform((channels,), 0.5))
        per_channel = []
        for p in (alpha, beta):
            p = g.op(scope, "Unsqueeze", [p, g.const(scope, [0], np.int64)])
            p = g.op(scope, "Unsqueeze", [p, g.const(scope, [-1], np.int64)])
            per_channel.append(g.op(scope, "Exp", [p]))
        alpha, beta = per_channel
        s = g.op(scope, "Sin", [g.op(scope, "Mul", [x, alpha])])
        s = g.op(scope, "Pow", [s, g.const(scope, 2.0)])
        inv = g.op(scope, "Reciprocal", [g.op(scope, "Add", [beta, g.const(scope, SNAKE_EPS)])])
        inv = g.op(scope, "Mul", [inv, g.const(scope, 1.0)])
        return g.op(scope, "Add", [x, g.op(scope, "Mul", [inv, s])])

    def upsample(self, scope, x, channels):
        g = self.g
        pad = FILTER_TAPS // RATIO - 1
        crop_left = pad * RATIO + (FILTER_TAPS - RATIO) // 2
        crop_right = pad * RATIO + (FILTER_TAPS - RATIO + 1) // 2
        x = g.op(scope, "Pad", [x, g.const(scope, [0, 0, pad, 0, 0, pad], np.int64)], mode="edge")
        taps = g.param(f"{state_dict_prefix(scope)}.filter", np.tile(self.up_filter, (channels, 1, 1)))
        x = g.op(scope, "ConvTranspose", [x, taps], dilations=[1], group=channels, kernel_shape=[FILTER_TAPS],
                 pads=[0, 0], strides=[RATIO])
        x = g.op(scope, "Mul", [x, g.const(scope, float(RATIO))])
        return g.op(scope, "Slice", [x, g.const(scope, [crop_left], np.int64), g.const(scope, [-crop_right], np.int64),
                                     g.const(scope, [2], np.int64), g.const(scope, [1], np.int64)])

    def downsample(self, scope, x, channels):
        g = self.g
        even = FILTER_TAPS % 2 == 0
        left, right = FILTER_TAPS // 2 - int(even), FILTER_TAPS // 2
        x = g.op(scope, "Pad", [x, g.const(scope, [0, 0, left, 0, 0, right], np.int64)], mode="edge")
        taps = g.param(f"{state_dict_prefix(scope)}.lowpass.filter", np.tile(self.down_filter, (channels, 1, 1)))
        return g.op(scope, "Conv", [x, taps], dilations=[1], group=channels, kernel_shape=[FILTER_TAPS],
                    pads=[0, 0], strides=[RATIO])

    def activation1d(self, scope, x, channels):
        x = self.upsample(f"{scope}/upsample", x, channels)
        x = self.snake_beta(f"{scope}/act", x, channels)
        return self.downsample(f"{scope}/downsample", x, channels)

    def amp_block(self, scope, x, channels, kernel, dilations):
        for i, d in enumerate(dilations):
            residual = x
            x = self.activation1d(f"{scope}/activations.{2 * i}", x, channels)
            x = self.conv1d(f"{scope}/convs1.{i}", x, channels, channels, kernel,
                            padding=(kernel * d - d) // 2, dilation=d)
            x = self.activation1d(f"{scope}/activations.{2 * i + 1}", x, channels)
            x = self.conv1d(f"{scope}/convs2.{i}", x, channels, channels, kernel, padding=(kernel - 1) // 2,
                            gain=RESIDUAL_GAIN)
            x = self.g.op(scope, "Add", [residual, x])
        return x

    def process_mel(self, x):
        """Qwen's process_mel_spectrogram: exp, 20*log10 clamped at MIN_DB, -20 dB, map to [-1, 1]."""
        g = self.g
        x = g.op("", "Exp", [x])
        floor = math.exp(MIN_DB / 20.0 * math.log(10))
        x = g.op("", "Clip", [x, g.const("", floor), ""])
        x = g.op("", "Div", [g.op("", "Log", [x]), g.const("", math.log(10))])
        x = g.op("", "Mul", [g.const("", 20.0), x])
        x = g.op("", "Sub", [x, g.const("", 20.0)])
        x = g.op("", "Div", [g.op("", "Sub", [x, g.const("", MIN_DB)]), g.const("", -MIN_DB)])
        x = g.op("", "Sub", [g.op("", "Mul", [g.const("", 2.0), x]), g.const("", 1.0)])
        return g.op("", "Clip", [x, g.const("", -1.0), g.const("", 1.0)])


def _generator(cfg: BigVGANConfig, seed: int) -> onnx.ModelProto:
    g = TorchLikeGraph("bigvgan", seed)
    w = _BigVGANWriter(g)
    x = g.input("mel", cfg.input_shape)
    if cfg.process_mel:
        x = w.process_mel(x)
    x = w.conv1d("/conv_pre", x, cfg.mel_dim, cfg.channels(0), 7, padding=3)
    n_kernels = len(cfg.resblock_kernel_sizes)
    for i, (rate, k) in enumerate(zip(cfg.upsample_rates, cfg.upsample_kernel_sizes)):
        c = cfg.channels(i + 1)
        x = w.conv_transpose1d(f"/ups.{i}/ups.{i}.0", x, cfg.channels(i), c, k, rate)
        total = None
        for j, (kr, dilations) in enumerate(zip(cfg.resblock_kernel_sizes, cfg.resblock_dilation_sizes)):
            y = w.amp_block(f"/resblocks.{i * n_kernels + j}", x, c, kr, dilations)
            total = y if total is None else g.op("", "Add", [total, y])
        x = g.op("", "Div", [total, g.const("", float(n_kernels))])
    c_last = cfg.channels(len(cfg.upsample_rates))
    x = w.activation1d("/activation_post", x, c_last)
    x = w.conv1d("/conv_post", x, c_last, 1, 7, padding=3, bias=False)
    g.op("", "Clip", [x, g.const("", -1.0), g.const("", 1.0)], outputs=["waveform"])
    g.output("waveform", cfg.output_shape)
    return g.model(doc=f"BigVGAN (Qwen2.5-Omni token2wav layout), {parameter_count(cfg)} parameters")


def build(size: Union[str, BigVGANConfig] = "tiny", seed: int = 0) -> onnx.ModelProto:
    """The generator at ``size`` (a key of SIZES, or a BigVGANConfig) with weights drawn from ``seed``."""
    return _generator(SIZES[size] if isinstance(size, str) else size, seed)


def activation1d_model(channels: int, length: int, seed: int = 0, depth: int = 1) -> onnx.ModelProto:
    """Anti-aliased SnakeBetas (``Activation1d``) alone: input ``x`` (1, C, T) -> ``y`` (1, C, T); one
    (scope ``/activation``) or ``depth`` in series (``/activations.i``), as on a vocoder's deepest path."""
    g = TorchLikeGraph("activation1d", seed)
    w = _BigVGANWriter(g)
    y = g.input("x", (1, channels, length))
    for i in range(depth):
        y = w.activation1d("/activation" if depth == 1 else f"/activations.{i}", y, channels)
    g.op("", "Identity", [y], outputs=["y"])
    g.output("y", (1, channels, length))
    return g.model(doc=f"BigVGAN Activation1d(SnakeBeta) x {depth}, up/down ratio 2, 12 taps")


def resampling_model(channels: int, length: int, depth: int, seed: int = 0) -> onnx.ModelProto:
    """``Activation1d`` without its SnakeBeta, ``depth`` times in series: UpSample1d -> DownSample1d,
    the anti-aliasing low-pass alone (close to the identity on a smooth signal). Input ``x``
    (1, C, T) -> ``y`` (1, C, T)."""
    g = TorchLikeGraph("resampling", seed)
    w = _BigVGANWriter(g)
    y = g.input("x", (1, channels, length))
    for i in range(depth):
        y = w.downsample(f"/resampling.{i}/downsample", w.upsample(f"/resampling.{i}/upsample", y, channels), channels)
    g.op("", "Identity", [y], outputs=["y"])
    g.output("y", (1, channels, length))
    return g.model(doc=f"BigVGAN UpSample1d -> DownSample1d x {depth}, ratio 2, 12 taps")


def example_inputs(size: str = "tiny", seed: int = 0) -> dict[str, np.ndarray]:
    """A log-mel-like input: natural-log magnitudes in about [-11, 2], smooth along time,
    louder in the low bands."""
    cfg = SIZES[size]
    rng = np.random.default_rng(seed)
    _, mels, frames = cfg.input_shape
    tilt = np.linspace(-2.0, -7.0, mels)[:, None]
    noise = rng.normal(0.0, 1.5, size=(mels, frames + 4))
    smooth = np.stack([noise[:, i:i + frames] for i in range(5)]).mean(0)
    mel = np.clip(tilt + smooth * 1.5, -11.5, 2.0)
    return {"mel": mel[None].astype(np.float32)}


def counted_parameters(model: onnx.ModelProto) -> int:
    """Parameters counted from a built model's initializers (filters are buffers, left out)."""
    return initializer_elements(model, BUFFER_SUFFIX)
