"""OneHot: axes, negative indices, float indices, value dtypes, runtime depth."""
import numpy as np

from harness import OpCase
from op_cases.constant import ScalarInputsCase


def one_hot(id, indices, depth, values, opset=11, runtime_depth=False, depth_dtype=np.int64, **attrs):
    weights = {"D": np.array(depth, depth_dtype), "V": np.array(values)}
    if runtime_depth:
        return ScalarInputsCase(f"onehot_{id}", "OneHot", {"I": indices, "D": np.array([depth], depth_dtype)},
                                attrs, {"V": np.array(values)}, input_order=["I", "D", "V"], opset=opset,
                                scalars=("D",))
    return OpCase(f"onehot_{id}", "OneHot", {"I": indices}, attrs, weights, opset=opset)


_idx = np.array([[0, 3, 1], [2, 2, 4]], np.int64)

CASES = [
    one_hot("default_axis", _idx, 5, np.array([0.0, 1.0], np.float32), opset=9),
    one_hot("axis0", _idx, 5, np.array([-1.0, 2.5], np.float32), axis=0),
    one_hot("axis1", _idx, 6, np.array([0, 7], np.int64), axis=1),
    one_hot("negative_indices", np.array([-1, 0, -3, 2], np.int64), 4, np.array([0.0, 1.0], np.float32)),
    one_hot("float_indices", np.array([1.0, 0.0, 3.0], np.float32), 4, np.array([2.0, 5.0], np.float32),
            depth_dtype=np.float32),
    one_hot("int32_indices", np.array([[1], [2]], np.int32), 3, np.array([0.0, 1.0], np.float32), axis=-2,
            depth_dtype=np.int32),
    one_hot("out_of_range", np.array([5, -6, 1], np.int64), 4, np.array([0.0, 1.0], np.float32)),
]

# A runtime depth: the MIL output shape stays symbolic until the program runs.
CASES += [
    one_hot("runtime_depth", np.array([1, -1, 2], np.int64), 3, np.array([0.0, 1.0], np.float32),
            runtime_depth=True),
    OpCase("onehot_runtime_depth_1d", "OneHot",
           {"I": np.array([[0, 2], [-2, 1]], np.int64), "D": np.array([4], np.int64)},
           {"axis": 1}, {"V": np.array([1.0, -1.0], np.float32)}, input_order=["I", "D", "V"], opset=11),
]

from op_cases.shape import SymbolicOpCase  # noqa: E402

CASES += [
    SymbolicOpCase("onehot_symbolic", "OneHot", {"I": np.array([[1, -1, 0]], np.int64)}, {"axis": 0},
                   {"D": np.array(3, np.int64), "V": np.array([0.0, 1.0], np.float32)}, opset=11,
                   symbolic={"I": {0: "n", 1: "m"}}),
]
