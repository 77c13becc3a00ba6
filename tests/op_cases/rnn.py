"""RNN / GRU / LSTM: directions, layout 1, biases, initial states, peepholes, clip, input_forget,
linear_before_reset, non-default activations with alpha/beta, graph-computed weights, Y_h/Y_c,
sequence_lens (constant or graph, shorter than the sequence).
onnxruntime has no batchwise (layout=1) kernels: ONNX's own *_batchwise cases check layout 1."""
import numpy as np

from harness import OpCase, rand

_GATES = {"RNN": 1, "GRU": 3, "LSTM": 4}


def recurrent(id, op, steps=4, batch=2, inputs=3, hidden=5, dirs=1, layout=0, bias=True, init=False,
              peepholes=False, graph_weights=False, n_outputs=None, opset=14, lens=None, graph_lens=False,
              **attrs):
    g = _GATES[op]
    x_shape = (batch, steps, inputs) if layout else (steps, batch, inputs)
    params = {"W": rand(dirs, g * hidden, inputs, seed=1), "R": rand(dirs, g * hidden, hidden, seed=2)}
    order = ["X", "W", "R"]
    if bias or init or peepholes or lens is not None:
        params["B"] = rand(dirs, 2 * g * hidden, seed=3) if bias else np.zeros((dirs, 2 * g * hidden), np.float32)
        order.append("B")
    if init or peepholes or lens is not None:
        order.append("L" if lens is not None else "")
        state = (batch, dirs, hidden) if layout else (dirs, batch, hidden)
        params["H0"] = rand(*state, seed=4)
        order.append("H0")
        if op == "LSTM":
            params["C0"] = rand(*state, seed=5)
            order.append("C0")
    if peepholes:
        params["P"] = rand(dirs, 3 * hidden, seed=6)
        order.append("P")
    inputs_ = {"X": rand(*x_shape, low=-2, high=2)}
    if lens is not None:
        (inputs_ if graph_lens else params)["L"] = np.array(lens, np.int32)
    if graph_weights:
        inputs_.update(params)
        params = {}
    direction = {1: "forward", 2: "bidirectional"}[dirs] if "direction" not in attrs else attrs.pop("direction")
    n = n_outputs or (3 if op == "LSTM" else 2)
    return OpCase(f"{op.lower()}_{id}", op, inputs_, dict(hidden_size=hidden, direction=direction, layout=layout,
                                                          **attrs) if layout else
                  dict(hidden_size=hidden, direction=direction, **attrs), params, input_order=order,
                  n_outputs=n, opset=opset)


CASES = [
    recurrent("defaults", "RNN", bias=False),
    recurrent("bias_init", "RNN", init=True),
    recurrent("reverse", "RNN", direction="reverse"),
    recurrent("bidirectional_init", "RNN", dirs=2, init=True),
    recurrent("relu_clip", "RNN", activations=["Relu"], clip=1.5),
    recurrent("one_step_graph_weights", "RNN", steps=1, graph_weights=True, init=True),
    recurrent("defaults", "GRU", bias=False),
    recurrent("bias_init", "GRU", init=True),
    recurrent("linear_before_reset", "GRU", linear_before_reset=1, init=True),
    recurrent("bidirectional", "GRU", dirs=2),
    recurrent("reverse", "GRU", direction="reverse"),
    recurrent("graph_weights_lbr", "GRU", graph_weights=True, linear_before_reset=1),
    recurrent("hardsigmoid_leakyrelu", "GRU", activations=["HardSigmoid", "LeakyRelu"],
              activation_alpha=[0.3, 0.2], activation_beta=[0.4]),
    recurrent("defaults", "LSTM", bias=False),
    recurrent("bias_init", "LSTM", init=True),
    recurrent("peepholes", "LSTM", peepholes=True),
    recurrent("bidirectional_init", "LSTM", dirs=2, init=True),
    recurrent("reverse", "LSTM", direction="reverse"),
    recurrent("clip_input_forget", "LSTM", clip=0.8, input_forget=1),
    recurrent("graph_weights_peepholes", "LSTM", graph_weights=True, peepholes=True),
    recurrent("activations", "LSTM", activations=["HardSigmoid", "Tanh", "Softsign"]),
    recurrent("y_only", "LSTM", n_outputs=1),
    recurrent("sequence_lens", "RNN", lens=[4, 2]),
    recurrent("sequence_lens_reverse", "GRU", direction="reverse", lens=[1, 3], linear_before_reset=1),
    recurrent("sequence_lens_graph_bidirectional", "LSTM", dirs=2, lens=[3, 4], graph_lens=True, batch=2),
    recurrent("sequence_lens_full", "LSTM", lens=[4, 4]),
]

REFUSED = [
    (recurrent("sequence_lens_zero_refused", "RNN", lens=[0, 4]), "outside 1..4"),
]
