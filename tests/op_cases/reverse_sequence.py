"""ReverseSequence: time axis 0 / batch axis 1 and the reverse, constant or graph lengths, rank 3."""
import numpy as np

from harness import OpCase, rand


def reverse_sequence(id, x, lens, dynamic=False, **attrs):
    lens = {"L": np.array(lens, np.int64)}
    inputs = {"X": x, **(lens if dynamic else {})}
    return OpCase(f"reversesequence_{id}", "ReverseSequence", inputs, attrs, {} if dynamic else lens,
                  input_order=["X", "L"], opset=10)


CASES = [
    reverse_sequence("time_major", rand(4, 4), [4, 3, 2, 1], time_axis=0, batch_axis=1),
    reverse_sequence("batch_major", rand(4, 4), [1, 2, 3, 4], time_axis=1, batch_axis=0),
    reverse_sequence("rank3_graph_lengths", rand(5, 3, 2), [2, 5, 0], dynamic=True, time_axis=0, batch_axis=1),
    reverse_sequence("int64", np.arange(12, dtype=np.int64).reshape(3, 4), [3, 1, 4], time_axis=1, batch_axis=0),
]
