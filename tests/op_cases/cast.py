"""Cast/CastLike between float, int and bool types; Identity; Dropout (inference) with its mask."""
import numpy as np
from onnx import TensorProto

from harness import OpCase, rand
from op_cases.binary import bools, ints

F = rand(3, 4, low=-5.0, high=5.0)


def cast(id, x, to, opset=17):
    return OpCase(f"cast_{id}", "Cast", {"X": x}, {"to": to}, opset=opset)


CASES = [
    cast("float_to_int64_truncates", F, TensorProto.INT64, opset=13),
    cast("float_to_int32", F, TensorProto.INT32, opset=6),
    cast("float_to_float16", F, TensorProto.FLOAT16),
    cast("float_to_double", F, TensorProto.DOUBLE, opset=19),
    cast("float_to_bool", np.array([0.0, -0.0, 0.5, -2.0, 3.0], dtype=np.float32), TensorProto.BOOL),
    cast("int64_to_float", ints(3, 4), TensorProto.FLOAT, opset=9),
    cast("int64_to_int32", ints(3, 4), TensorProto.INT32),
    cast("int32_to_int64", ints(3, 4, dtype=np.int32), TensorProto.INT64, opset=21),
    cast("bool_to_float", bools(2, 5), TensorProto.FLOAT, opset=13),
    cast("bool_to_int64", bools(2, 5), TensorProto.INT64),
    cast("float16_to_float", rand(3, 2, dtype=np.float16), TensorProto.FLOAT),
    cast("float_to_float", F, TensorProto.FLOAT),
    OpCase("castlike_float_to_int", "CastLike", {"X": F}, weights={"T": np.zeros(1, np.int64)}, opset=15),
    OpCase("castlike_int_to_float16", "CastLike", {"X": ints(4)}, weights={"T": np.zeros(1, np.float16)},
           opset=19),
    OpCase("identity_float", "Identity", {"X": F}, opset=13),
    OpCase("identity_int", "Identity", {"X": ints(2, 3)}, opset=16),
    OpCase("dropout_opset7", "Dropout", {"X": F}, {"ratio": 0.3}, opset=7),
    # The mask before opset 12 is all-false in onnxruntime but all-true in ONNX's reference: not compared.
    OpCase("dropout_mask_opset12", "Dropout", {"X": F}, n_outputs=2, opset=12),
    OpCase("dropout_ratio_input", "Dropout", {"X": F}, weights={"r": np.array(0.5, np.float32)}, opset=12),
    OpCase("dropout_training_false_mask", "Dropout", {"X": F}, n_outputs=2, opset=13,
           weights={"r": np.array(0.5, np.float32), "t": np.array(False)}),
]

# The Dropout mask of a symbolic-shaped input is filled to the runtime shape.
from op_cases.shape import SymbolicOpCase  # noqa: E402

CASES.append(SymbolicOpCase("dropout_mask_symbolic", "Dropout", {"X": F}, n_outputs=2, opset=13,
                            symbolic={"X": {0: "batch"}}))

# Training-mode Dropout with ratio 0 is the identity (every mask element kept).
CASES += [
    OpCase("dropout_training_zero_ratio", "Dropout", {"x": rand(3, 4)}, {},
           {"ratio": np.array(0.0, np.float32), "training_mode": np.array(True)}, n_outputs=2, opset=13),
]
