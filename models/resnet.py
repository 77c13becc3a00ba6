"""ResNet with BasicBlocks (torchvision layout), written as ``torch.onnx.export`` emits it at opset 17
with BatchNormalization kept (exported with ``training=TrainingMode.PRESERVE``, not fused into Conv).

conv1 -> bn1 -> relu -> maxpool -> layer1..layerN (conv-bn-relu-conv-bn + identity or
conv1x1-bn downsample, Add, Relu) -> GlobalAveragePool -> Flatten -> fc (Gemm).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import onnx

from ._torch_like import TorchLikeGraph, initializer_elements, state_dict_prefix

BN_EPS = 1e-5
BN_STATS_SUFFIX = (".running_mean", ".running_var")   # buffers, not parameters


@dataclass(frozen=True)
class ResNetConfig:
    image: int                       # input height = width
    stem_kernel: int                 # conv1 kernel (stride = stem_stride, padding = kernel // 2)
    stem_stride: int
    blocks: tuple[int, ...]          # BasicBlocks per layer
    channels: tuple[int, ...]        # output channels per layer
    num_classes: int

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        return (1, 3, self.image, self.image)

    @property
    def output_shape(self) -> tuple[int, int]:
        return (1, self.num_classes)


SIZES = {
    "tiny": ResNetConfig(image=32, stem_kernel=3, stem_stride=1, blocks=(1, 1, 1), channels=(16, 32, 64),
                         num_classes=10),
    "18": ResNetConfig(image=224, stem_kernel=7, stem_stride=2, blocks=(2, 2, 2, 2),
                             channels=(64, 128, 256, 512), num_classes=1000),
}


class _ResNetWriter:
    def __init__(self, g: TorchLikeGraph):
        self.g = g

    def conv(self, scope, x, c_in, c_out, k, stride):
        g = self.g
        w = g.uniform((c_out, c_in, k, k), math.sqrt(6.0 / (c_in * k * k)))   # Kaiming (ReLU gain)
        return g.op(scope, "Conv", [x, g.param(f"{state_dict_prefix(scope)}.weight", w)], dilations=[1, 1], group=1,
                    kernel_shape=[k, k], pads=[k // 2] * 4, strides=[stride, stride])

    def bn(self, scope, x, c):
        g = self.g
        p = state_dict_prefix(scope)
        rng = g.rng
        inputs = [x,
                  g.param(f"{p}.weight", rng.uniform(0.5, 1.5, c)),
                  g.param(f"{p}.bias", rng.uniform(-0.2, 0.2, c)),
                  g.param(f"{p}.running_mean", rng.uniform(-0.3, 0.3, c)),
                  g.param(f"{p}.running_var", rng.uniform(0.5, 2.0, c))]
        return g.op(scope, "BatchNormalization", inputs, epsilon=BN_EPS, momentum=0.9, training_mode=0)

    def basic_block(self, scope, x, c_in, c_out, stride):
        g = self.g
        y = self.bn(f"{scope}/bn1", self.conv(f"{scope}/conv1", x, c_in, c_out, 3, stride), c_out)
        y = g.op(f"{scope}/relu", "Relu", [y])
        y = self.bn(f"{scope}/bn2", self.conv(f"{scope}/conv2", y, c_out, c_out, 3, 1), c_out)
        if stride != 1 or c_in != c_out:
            x = self.conv(f"{scope}/downsample/downsample.0", x, c_in, c_out, 1, stride)
            x = self.bn(f"{scope}/downsample/downsample.1", x, c_out)
        y = g.op(scope, "Add", [y, x])
        return g.op(f"{scope}/relu_1", "Relu", [y])   # the block's relu module, called a second time


def _network(cfg: ResNetConfig, seed: int) -> onnx.ModelProto:
    g = TorchLikeGraph("resnet", seed)
    w = _ResNetWriter(g)
    x = g.input("input", cfg.input_shape)
    x = w.conv("/conv1", x, 3, cfg.channels[0], cfg.stem_kernel, cfg.stem_stride)
    x = g.op("/relu", "Relu", [w.bn("/bn1", x, cfg.channels[0])])
    x = g.op("/maxpool", "MaxPool", [x], ceil_mode=0, dilations=[1, 1], kernel_shape=[3, 3], pads=[1, 1, 1, 1],
             strides=[2, 2])
    c_in = cfg.channels[0]
    for i, (n, c) in enumerate(zip(cfg.blocks, cfg.channels)):
        for b in range(n):
            stride = 2 if i > 0 and b == 0 else 1
            x = w.basic_block(f"/layer{i + 1}/layer{i + 1}.{b}", x, c_in, c, stride)
            c_in = c
    x = g.op("/avgpool", "GlobalAveragePool", [x])
    x = g.op("", "Flatten", [x], axis=1)
    bound = 1.0 / math.sqrt(c_in)
    fc_w = g.param("fc.weight", g.uniform((cfg.num_classes, c_in), bound))
    fc_b = g.param("fc.bias", g.uniform((cfg.num_classes,), bound))
    g.op("/fc", "Gemm", [x, fc_w, fc_b], alpha=1.0, beta=1.0, transB=1, outputs=["logits"])
    g.output("logits", cfg.output_shape)
    return g.model(doc=f"ResNet (BasicBlock), {parameter_count(cfg)} parameters")


def parameter_count(cfg: ResNetConfig) -> int:
    """Trainable parameters (BatchNorm running statistics are buffers, left out)."""
    n = 3 * cfg.channels[0] * cfg.stem_kernel ** 2 + 2 * cfg.channels[0]
    c_in = cfg.channels[0]
    for i, (blocks, c) in enumerate(zip(cfg.blocks, cfg.channels)):
        for b in range(blocks):
            n += c_in * c * 9 + c * c * 9 + 4 * c
            if (i > 0 and b == 0) or c_in != c:
                n += c_in * c + 2 * c
            c_in = c
    return n + c_in * cfg.num_classes + cfg.num_classes


def counted_parameters(model: onnx.ModelProto) -> int:
    return initializer_elements(model, BN_STATS_SUFFIX)


def build(size: str = "tiny", seed: int = 0) -> onnx.ModelProto:
    return _network(SIZES[size], seed)


def example_inputs(size: str = "tiny", seed: int = 0) -> dict[str, np.ndarray]:
    """An ImageNet-normalised-like image: smooth colour blobs, roughly zero mean, unit variance."""
    cfg = SIZES[size]
    rng = np.random.default_rng(seed)
    _, c, h, w = cfg.input_shape
    coarse = rng.normal(0.0, 1.0, size=(c, h // 4 + 1, w // 4 + 1))
    image = np.repeat(np.repeat(coarse, 4, axis=1), 4, axis=2)[:, :h, :w]
    image += rng.normal(0.0, 0.3, size=image.shape)
    return {"input": image[None].astype(np.float32)}
