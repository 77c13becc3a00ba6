"""Post-norm transformer encoder (BERT layout) written as ``torch.onnx.export`` emits it at opset 17.

Per layer: q/k/v Linear (MatMul with the transposed weight, then Add) -> Reshape/Transpose into
heads -> MatMul, Div by sqrt(head_dim), Softmax, MatMul -> Transpose/Reshape back -> output Linear
-> residual Add -> LayerNormalization -> Linear, exact GELU as exported (Div by sqrt 2, Erf, Add 1,
Mul, Mul 0.5), Linear -> residual Add -> LayerNormalization.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import onnx

from ._torch_like import TorchLikeGraph, initializer_elements

LN_EPS = 1e-5


@dataclass(frozen=True)
class TransformerConfig:
    seq_len: int
    hidden: int
    heads: int
    ffn: int
    layers: int

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (1, self.seq_len, self.hidden)


SIZES = {
    "tiny": TransformerConfig(seq_len=16, hidden=64, heads=4, ffn=256, layers=2),
}


class _EncoderWriter:
    def __init__(self, g: TorchLikeGraph, cfg: TransformerConfig):
        self.g, self.cfg = g, cfg

    def linear(self, scope, x, name, d_in, d_out):
        """torch Linear on a 3-D input: MatMul with a folded transposed weight, then Add the bias."""
        g = self.g
        bound = 1.0 / math.sqrt(d_in)
        weight_t = g.folded("MatMul", g.uniform((d_out, d_in), math.sqrt(3.0) * bound).T)
        bias = g.param(f"{name}.bias", g.uniform((d_out,), bound))
        return g.op(scope, "Add", [bias, g.op(scope, "MatMul", [x, weight_t])])

    def layer_norm(self, scope, x, name, outputs=None):
        g, d = self.g, self.cfg.hidden
        scale = g.param(f"{name}.weight", g.rng.uniform(0.8, 1.2, d))
        shift = g.param(f"{name}.bias", g.rng.uniform(-0.1, 0.1, d))
        return g.op(scope, "LayerNormalization", [x, scale, shift], axis=-1, epsilon=LN_EPS, outputs=outputs)

    def attention(self, scope, x, name):
        g, cfg = self.g, self.cfg
        split = [1, cfg.seq_len, cfg.heads, cfg.head_dim]
        heads = {}
        for proj in ("query", "key", "value"):
            y = self.linear(f"{scope}/{proj}", x, f"{name}.{proj}", cfg.hidden, cfg.hidden)
            y = g.op(scope, "Reshape", [y, g.const(scope, split, np.int64)])
            heads[proj] = g.op(scope, "Transpose", [y], perm=[0, 2, 1, 3])
        key_t = g.op(scope, "Transpose", [heads["key"]], perm=[0, 1, 3, 2])
        scores = g.op(scope, "MatMul", [heads["query"], key_t])
        scores = g.op(scope, "Div", [scores, g.const(scope, math.sqrt(cfg.head_dim))])
        probs = g.op(scope, "Softmax", [scores], axis=-1)
        context = g.op(scope, "MatMul", [probs, heads["value"]])
        context = g.op(scope, "Transpose", [context], perm=[0, 2, 1, 3])
        context = g.op(scope, "Reshape", [context, g.const(scope, list(cfg.input_shape), np.int64)])
        return self.linear(f"{scope}/output", context, f"{name}.output", cfg.hidden, cfg.hidden)

    def gelu(self, scope, x):
        g = self.g
        y = g.op(scope, "Erf", [g.op(scope, "Div", [x, g.const(scope, math.sqrt(2.0))])])
        y = g.op(scope, "Add", [y, g.const(scope, 1.0)])
        y = g.op(scope, "Mul", [x, y])
        return g.op(scope, "Mul", [y, g.const(scope, 0.5)])

    def layer(self, scope, x, name, outputs=None):
        cfg = self.cfg
        x = self.g.op(scope, "Add", [x, self.attention(f"{scope}/attention", x, f"{name}.attention")])
        x = self.layer_norm(f"{scope}/norm1", x, f"{name}.norm1")
        y = self.linear(f"{scope}/mlp/fc1", x, f"{name}.mlp.fc1", cfg.hidden, cfg.ffn)
        y = self.gelu(f"{scope}/mlp/act", y)
        y = self.linear(f"{scope}/mlp/fc2", y, f"{name}.mlp.fc2", cfg.ffn, cfg.hidden)
        x = self.g.op(scope, "Add", [x, y])
        return self.layer_norm(f"{scope}/norm2", x, f"{name}.norm2", outputs)


def _encoder(cfg: TransformerConfig, seed: int) -> onnx.ModelProto:
    g = TorchLikeGraph("transformer", seed)
    w = _EncoderWriter(g, cfg)
    x = g.input("hidden_states", cfg.input_shape)
    for i in range(cfg.layers):
        last = i == cfg.layers - 1
        x = w.layer(f"/layers/layers.{i}", x, f"layers.{i}", ["last_hidden_state"] if last else None)
    g.output("last_hidden_state", cfg.input_shape)
    return g.model(doc=f"Transformer encoder (post-norm), {parameter_count(cfg)} parameters")


def parameter_count(cfg: TransformerConfig) -> int:
    d, f = cfg.hidden, cfg.ffn
    per_layer = 4 * (d * d + d) + (d * f + f) + (f * d + d) + 2 * 2 * d
    return cfg.layers * per_layer


def counted_parameters(model: onnx.ModelProto) -> int:
    return initializer_elements(model)


def build(size: str = "tiny", seed: int = 0) -> onnx.ModelProto:
    return _encoder(SIZES[size], seed)


def example_inputs(size: str = "tiny", seed: int = 0) -> dict[str, np.ndarray]:
    """Embedding-like hidden states: unit-variance features with a per-position offset."""
    cfg = SIZES[size]
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 1.0, size=cfg.input_shape)
    x += 0.1 * np.sin(np.arange(cfg.seq_len))[None, :, None]
    return {"hidden_states": x.astype(np.float32)}
