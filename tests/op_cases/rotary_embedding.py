"""RotaryEmbedding (opset 23): 4-D and 3-D (num_heads) input, interleaved, partial rotary dim,
with and without position_ids (constant or graph)."""
import numpy as np

from harness import OpCase, rand

_POS = np.array([[0, 1, 2], [4, 3, 7]], np.int64)


def rotary(id, x_shape, half, positions="graph", **attrs):
    inputs = {"X": rand(*x_shape)}
    weights = {}
    if positions is None:
        inputs.update(C=rand(2, 3, half, seed=1), S=rand(2, 3, half, seed=2))
        order = ["X", "C", "S"]
    else:
        angles = np.arange(10)[:, None] * (0.5 ** np.arange(half))[None, :]
        weights.update(C=np.cos(angles).astype(np.float32), S=np.sin(angles).astype(np.float32))
        (inputs if positions == "graph" else weights)["P"] = _POS
        order = ["X", "C", "S", "P"]
    return OpCase(f"rotaryembedding_{id}", "RotaryEmbedding", inputs, attrs, weights, input_order=order, opset=23)


CASES = [
    rotary("4d", (2, 4, 3, 8), 4),
    rotary("4d_const_positions", (2, 4, 3, 8), 4, positions="const"),
    rotary("3d_num_heads", (2, 3, 32), 4, num_heads=4),
    rotary("interleaved", (2, 4, 3, 8), 4, interleaved=1),
    rotary("rotary_dim", (2, 4, 3, 8), 2, rotary_embedding_dim=4),
    rotary("interleaved_rotary_dim_3d", (2, 3, 16), 2, num_heads=2, interleaved=1, rotary_embedding_dim=4),
    rotary("no_positions", (2, 4, 3, 8), 4, positions=None),
    rotary("no_positions_interleaved", (2, 4, 3, 8), 4, positions=None, interleaved=1),
]
