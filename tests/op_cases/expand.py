"""Expand (rank growth, 1-dims both ways, runtime target, symbolic dims) and Tile."""
import numpy as np

from harness import OpCase, rand
from op_cases.shape import SymbolicOpCase


def expand(id, x, shape, opset=13, runtime=False, symbolic=None):
    cls = SymbolicOpCase if symbolic else OpCase
    extra = dict(symbolic={"X": symbolic}) if symbolic else {}
    case = cls(f"expand_{id}", "Expand", {"X": x}, weights={"S": np.array(shape, np.int64)}, opset=opset, **extra)
    if runtime:
        case.inputs["S"] = case.weights.pop("S")
    return case


def tile(id, x, reps, opset=13, runtime=False):
    case = OpCase(f"tile_{id}", "Tile", {"X": x}, weights={"R": np.array(reps, np.int64)}, opset=opset)
    if runtime:
        case.inputs["R"] = case.weights.pop("R")
    return case


CASES = [
    expand("same_rank", rand(3, 1), [3, 4], opset=8),
    expand("rank_growth", rand(3, 1), [2, 1, 5]),
    expand("target_smaller", rand(2, 1, 4), [3, 1]),
    expand("target_has_ones", rand(1, 4), [3, 1]),
    expand("noop", rand(2, 3), [1]),
    expand("int64", np.arange(3, dtype=np.int64).reshape(3, 1), [2, 3, 4]),
    expand("bool", np.array([[True], [False]]), [2, 3]),
    expand("symbolic_dim", rand(1, 4), [3, 4], symbolic={1: "n"}),
    expand("symbolic_dim_broadcast", rand(1, 4), [3, 1], symbolic={0: "m"}),
    tile("basic", rand(2, 3), [2, 3], opset=6),
    tile("ones", rand(2, 3, 4), [1, 2, 1]),
    tile("int64", np.arange(6, dtype=np.int64).reshape(2, 3), [3, 1]),
]

# Runtime targets/repeats: the MIL output shape stays symbolic until the program runs.
CASES += [
    expand("runtime_shape", rand(3, 1), [2, 3, 4], runtime=True),
    expand("runtime_shape_bool", np.array([[True], [False]]), [2, 3], runtime=True),
    tile("runtime_reps", rand(2, 3), [2, 2], runtime=True),
]

CASES += [
    SymbolicOpCase("tile_symbolic", "Tile", {"X": rand(2, 3)}, weights={"R": np.array([2, 3], np.int64)},
                   opset=13, symbolic={"X": {0: "n"}}),
]
