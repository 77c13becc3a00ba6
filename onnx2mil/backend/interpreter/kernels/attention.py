"""scaled_dot_product_attention (iOS18): softmax(Q K^T / sqrt(E) + mask) V; a bool mask keeps
the positions where it is True (the others get -inf), a float mask is added to the scores."""
from __future__ import annotations

import numpy as np

from .activation import wide
from .registry import kernel


@kernel("scaled_dot_product_attention")
def scaled_dot_product_attention(op, query, key, value, attn_mask=None):
    q, k, v = wide(query), wide(key), wide(value)
    scores = np.matmul(q, np.swapaxes(k, -1, -2)) / np.sqrt(np.float32(q.shape[-1]))
    if attn_mask is not None:
        mask = np.asarray(attn_mask)
        scores = np.where(mask, scores, -np.inf) if mask.dtype == np.bool_ else scores + wide(mask)
    scores = scores - np.max(scores, axis=-1, keepdims=True)
    weights = np.exp(scores)
    weights /= np.sum(weights, axis=-1, keepdims=True)
    return np.matmul(weights, v)
