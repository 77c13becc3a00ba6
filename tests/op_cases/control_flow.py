"""If (dynamic and constant condition) and Loop (trip count, condition, loop-carried state)."""
import numpy as np
import onnx
import onnx.helper as oh

from harness import OpCase, rand

F, B, I64 = onnx.TensorProto.FLOAT, onnx.TensorProto.BOOL, onnx.TensorProto.INT64


def branch(name, op, out):
    return oh.make_graph([oh.make_node(op, ["x"], [out], name=f"{name}_{op}")], name, [],
                         [oh.make_tensor_value_info(out, F, [2, 3])])



def loop_body():
    """v <- v * 2 + i; keep going while sum(v) < 100."""
    nodes = [
        oh.make_node("Cast", ["i"], ["i_f"], to=F, name="body_cast"),
        oh.make_node("Add", ["v", "v"], ["v2"], name="body_double"),
        oh.make_node("Add", ["v2", "i_f"], ["v_out"], name="body_add_i"),
        oh.make_node("ReduceSum", ["v_out"], ["total"], keepdims=0, name="body_sum"),
        oh.make_node("Less", ["total", "limit"], ["c_out"], name="body_less"),
    ]
    return oh.make_graph(nodes, "body",
                         [oh.make_tensor_value_info("i", I64, []), oh.make_tensor_value_info("c_in", B, []),
                          oh.make_tensor_value_info("v", F, [3])],
                         [oh.make_tensor_value_info("c_out", B, []), oh.make_tensor_value_info("v_out", F, [3])])


def loop_case(id, trip, keep_going=True):
    weights = {"limit": np.array(100.0, np.float32), "M": np.array(trip, np.int64)}
    inputs = {"v0": rand(3, low=0.1, high=1.0), "c0": np.array(keep_going)}
    return OpCase(f"loop_{id}", "Loop", inputs, {"body": loop_body()}, weights,
                  input_order=["M", "c0", "v0"], fp16=False)


CASES = [
    OpCase("if_dynamic_true", "If", {"c": np.array(True), "x": rand(2, 3)},
           dict(then_branch=branch("then", "Sin", "t"), else_branch=branch("else", "Cos", "e")),
           input_order=["c"]),
    OpCase("if_dynamic_false", "If", {"c": np.array([False]), "x": rand(2, 3)},
           dict(then_branch=branch("then", "Sin", "t"), else_branch=branch("else", "Cos", "e")),
           input_order=["c"]),
    OpCase("if_constant_condition_inlined", "If", {"x": rand(2, 3)},
           dict(then_branch=branch("then", "Sin", "t"), else_branch=branch("else", "Cos", "e")),
           weights={"c": np.array(False)}, input_order=["c"]),
    loop_case("trip_count_bound", trip=3),
    loop_case("condition_bound", trip=50),
    loop_case("not_started", trip=5, keep_going=False),
]
