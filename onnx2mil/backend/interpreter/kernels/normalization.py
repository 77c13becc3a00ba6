"""batch_norm, instance_norm, layer_norm, l2_norm, local_response_norm (defs/iOS15/normalization.py),
computed in fp32 for fp16 inputs (statistics of fp16 tensors accumulate in fp32)."""
from __future__ import annotations

import numpy as np

from .activation import per_channel, wide
from .registry import kernel, specialize


@kernel("batch_norm")
def batch_norm(op, x, mean, variance, gamma=None, beta=None, epsilon=1e-5):
    x = wide(x)
    scale = 1.0 / np.sqrt(per_channel(variance, x.ndim) + np.float32(epsilon))
    if gamma is not None:
        scale = scale * per_channel(gamma, x.ndim)
    y = (x - per_channel(mean, x.ndim)) * scale
    return y + per_channel(beta, x.ndim) if beta is not None else y


def _normalize(x: np.ndarray, axes: tuple, epsilon) -> np.ndarray:
    mean = np.mean(x, axis=axes, keepdims=True)
    centred = x - mean
    var = np.mean(np.square(centred), axis=axes, keepdims=True)
    return centred / np.sqrt(var + np.float32(epsilon))


@kernel("instance_norm")
def instance_norm(op, x, gamma=None, beta=None, epsilon=1e-5):
    x = wide(x)
    y = _normalize(x, tuple(range(2, x.ndim)), epsilon)
    if gamma is not None:
        y = y * per_channel(gamma, x.ndim)
    return y + per_channel(beta, x.ndim) if beta is not None else y


def _axes(axes, rank: int) -> tuple:
    return tuple(sorted({int(a) % rank for a in np.asarray(axes).reshape(-1)})) if axes is not None \
        else tuple(range(rank))


class LayerNorm:
    """layer_norm of inputs shaped like ``shape`` over ``axes``. Over the trailing axes (the usual
    case) each statistic is one BLAS product of the rows with a column of 1/size weights, a third of
    the cost of numpy's reduction over the last axis on small rows; other axes reduce with
    add.reduce. The kernel builds one per call, the specialization once per op."""

    def __init__(self, shape: tuple, axes: tuple, gamma, beta, epsilon):
        rank = len(shape)
        normalized_shape = [shape[i] if i in axes else 1 for i in range(rank)]
        self.axes = axes
        self.gamma = None if gamma is None else np.asarray(gamma, dtype=np.float32).reshape(normalized_shape)
        self.beta = None if beta is None else np.asarray(beta, dtype=np.float32).reshape(normalized_shape)
        self.epsilon = np.float32(epsilon)
        size = int(np.prod([shape[a] for a in axes]))
        self.lead = rank - len(axes) if axes == tuple(range(rank - len(axes), rank)) and size else None
        self.weights = np.full((size, 1), 1 / size, np.float32) if self.lead is not None else None  # a column: the
        # statistics come out as columns, ready to broadcast along the rows
        self.count = np.intp(size)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if self.lead is not None:
            rows = x.reshape(-1, self.weights.size)                  # 2-D: np.dot is one BLAS product
            centred = rows - np.dot(rows, self.weights)
            var = np.dot(np.square(centred), self.weights)
        else:
            centred = x - _mean(x, self.axes, self.count)
            var = _mean(np.square(centred), self.axes, self.count)
        var += self.epsilon
        centred /= np.sqrt(var, out=var)
        y = centred.reshape(x.shape)
        if self.gamma is not None:
            y *= self.gamma
        if self.beta is not None:
            y += self.beta
        return y


@kernel("layer_norm")
def layer_norm(op, x, axes=None, gamma=None, beta=None, epsilon=1e-5):
    x = wide(x)
    return LayerNorm(x.shape, _axes(axes, x.ndim), gamma, beta, epsilon)(x)


@kernel("l2_norm")
def l2_norm(op, x, epsilon=1e-6):
    """The last three dims are normalised together; leading dims are batch."""
    x = wide(x)
    flat = x.reshape(int(np.prod(x.shape[:-3], dtype=np.int64)), -1)
    norm = np.sqrt(np.sum(np.square(flat), axis=1, keepdims=True) + np.float32(epsilon))
    return (flat / norm).reshape(x.shape)


@kernel("local_response_norm")
def local_response_norm(op, x, size, alpha=1e-4, beta=0.75, k=1.0):
    """x / (k + alpha/size * sum of x^2 over the ``size`` channels around c) ** beta."""
    x = wide(x)
    size = int(size)
    before, after = (size - 1) // 2, size - 1 - (size - 1) // 2
    sq = np.square(x)
    widths = [(0, 0), (before, after)] + [(0, 0)] * (x.ndim - 2)
    csum = np.cumsum(np.pad(sq, widths), axis=1)
    csum = np.concatenate([np.zeros_like(csum[:, :1]), csum], axis=1)
    window = csum[:, size:] - csum[:, :-size]
    return x / np.power(np.float32(k) + np.float32(alpha) / size * window, np.float32(beta))


def _mean(x: np.ndarray, axes: tuple, count) -> np.ndarray:
    """np.mean(x, axes, keepdims=True) for a float32/float64 x, without its Python bookkeeping."""
    total = np.add.reduce(x, axis=axes, keepdims=True)
    return np.true_divide(total, count, out=total, casting="unsafe", subok=False)


def _trailing_layer_norm(norm: LayerNorm, shape: tuple, other_shapes):
    """``norm`` (over trailing axes, with gamma and beta) as one closure for float32 inputs of
    ``shape``: LayerNorm.__call__'s steps on its arrays, without the attribute lookups."""
    weights, epsilon, gamma, beta = norm.weights, norm.epsilon, norm.gamma, norm.beta
    rows = (-1, weights.size)
    dot, square, sqrt = np.dot, np.square, np.sqrt

    def run(x):
        if x.shape != shape:
            return other_shapes(x)
        r = x.reshape(rows)
        centred = r - dot(r, weights)
        var = dot(square(centred), weights)
        var += epsilon
        centred /= sqrt(var, out=var)
        y = centred.reshape(shape)
        y *= gamma
        y += beta
        return y

    return run


@specialize("layer_norm")
def layer_norm_plan(op, static, dynamic):
    """Axes, gamma, beta and the statistics' weights prepared once for the input's static shape."""
    if [name for name, _ in dynamic] != ["x"]:
        return None
    spec = dynamic[0][1]
    if spec.scalar or spec.shape is None or spec.np_dtype is None or spec.np_dtype.kind != "f":
        return None
    norm = LayerNorm(spec.shape, _axes(static.get("axes"), spec.rank), static.get("gamma"), static.get("beta"),
                     static.get("epsilon", 1e-5))
    fp16 = spec.np_dtype == np.float16
    if not fp16 and norm.lead is not None and norm.gamma is not None and norm.beta is not None:
        return _trailing_layer_norm(norm, spec.shape, lambda x: layer_norm(
            op, x, static.get("axes"), static.get("gamma"), static.get("beta"), static.get("epsilon", 1e-5)))

    def run(x):
        if x.shape != spec.shape:
            return layer_norm(op, x, static.get("axes"), static.get("gamma"), static.get("beta"),
                              static.get("epsilon", 1e-5))
        return norm(x.astype(np.float32) if fp16 else x)

    return run
