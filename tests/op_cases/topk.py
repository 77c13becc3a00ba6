"""TopK: k attribute (< 10), K input (>= 10), axes, largest=0, sorted=0, int data."""
import numpy as np

from harness import OpCase

def distinct(*shape, seed=0):
    """Distinct values, so the order of ties cannot differ."""
    n = int(np.prod(shape))
    return (np.random.default_rng(seed).permutation(n).astype(np.float32) / n - 0.5).reshape(shape)


def topk(id, x, k, opset=11, **attrs):
    if opset < 10:
        return OpCase(f"topk_{id}", "TopK", {"X": x}, {"k": k, **attrs}, n_outputs=2, opset=opset)
    return OpCase(f"topk_{id}", "TopK", {"X": x}, attrs, {"K": np.array([k], np.int64)}, n_outputs=2, opset=opset)


CASES = [
    topk("attr", distinct(3, 7), 3, opset=9),
    topk("input_opset10", distinct(3, 7), 2, opset=10, axis=0),
    topk("last_axis", distinct(2, 3, 8), 4),
    topk("axis1_smallest", distinct(2, 6, 3), 2, axis=1, largest=0),
    topk("full", distinct(5), 5, largest=0, opset=13),
    topk("int64", np.random.default_rng(0).permutation(12).astype(np.int64).reshape(3, 4), 2, axis=-1),
]

# sorted=0 leaves the order unspecified (onnxruntime returns another order than MIL's sorted one):
# only shapes can be compared.
UNORDERED_CASES = [topk("unsorted", distinct(4, 5), 3, sorted=0, opset=21)]

REFUSED = [
    (OpCase("topk_runtime_k", "TopK", {"X": distinct(3, 4), "K": np.array([2], np.int64)}, n_outputs=2), "constant"),
]

from op_cases.shape import SymbolicOpCase  # noqa: E402

CASES += [
    SymbolicOpCase("topk_symbolic", "TopK", {"X": distinct(3, 7)}, weights={"K": np.array([3], np.int64)},
                   n_outputs=2, opset=11, symbolic={"X": {0: "n", 1: "m"}}),
]
