"""Scan (opsets 9, 16): running sum state with a scan output, two states, reversed input and
output directions, a non-zero scan axis, an outer-scope tensor used in the body."""
import numpy as np
import onnx.helper as oh
from onnx import TensorProto

from harness import OpCase, rand


def sum_body(two_states=False, outer=None):
    """state + x (and state * x); scan output: the new sum (plus x * outer if given)."""
    vi = oh.make_tensor_value_info
    inputs = [vi("s_in", TensorProto.FLOAT, [2])] + ([vi("p_in", TensorProto.FLOAT, [2])] if two_states else []) + \
        [vi("x_t", TensorProto.FLOAT, [2])]
    nodes = [oh.make_node("Add", ["s_in", "x_t"], ["s_out"])]
    outputs = [vi("s_out", TensorProto.FLOAT, [2])]
    if two_states:
        nodes.append(oh.make_node("Mul", ["p_in", "x_t"], ["p_out"]))
        outputs.append(vi("p_out", TensorProto.FLOAT, [2]))
    if outer:
        nodes.append(oh.make_node("Mul", ["x_t", outer], ["y_t"]))
    else:
        nodes.append(oh.make_node("Identity", ["s_out"], ["y_t"]))
    outputs.append(vi("y_t", TensorProto.FLOAT, [2]))
    return oh.make_graph(nodes, "body", inputs, outputs)


def scan(id, x, states, body, n_outputs, opset=16, **attrs):
    inputs = {**states, "X": x}
    return OpCase(f"scan_{id}", "Scan", inputs, dict(body=body, num_scan_inputs=1, **attrs), n_outputs=n_outputs,
                  opset=opset)


CASES = [
    scan("sum", rand(4, 2), {"S": rand(2, seed=1)}, sum_body(), 2, opset=9),
    scan("two_states", rand(3, 2, low=0.5, high=1.5), {"S": rand(2, seed=1), "P": np.ones(2, np.float32)},
         sum_body(two_states=True), 3),
    scan("reverse_in_out", rand(5, 2), {"S": rand(2, seed=1)}, sum_body(), 2,
         scan_input_directions=[1], scan_output_directions=[1]),
    scan("axis1_output_axis1", rand(2, 4), {"S": rand(2, seed=1)}, sum_body(), 2,
         scan_input_axes=[1], scan_output_axes=[1]),
]

# A body reading an outer-scope tensor ("W", a graph input of the main graph).
_outer = scan("outer_scope", rand(3, 2), {"S": rand(2, seed=1)}, sum_body(outer="W"), 2)
_outer.inputs["W"] = rand(2, seed=5)
_outer.input_order = ["S", "X"]
CASES.append(_outer)
