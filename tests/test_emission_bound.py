"""The number of MIL ops each ONNX node emits is bounded (issue 12): no builder emits one block of
ops per kernel tap, sequence step, box or other data size. Every op case (tests/op_cases), onnx's
node cases and its pytorch-converted models are emitted (builders only, no coremltools passes) and
each node's ops are counted: every op but ``const``, nested blocks (while_loop and cond bodies)
included, attributed by the debug handle each op carries (``graph.node_scope``).

BOUND: 64, from the sweep (2,245 op and node cases, after the pools, recurrences, CumProd and
NonMaxSuppression stopped growing): every op but five stays at or under 64; those five have a count
fixed by their attributes and rank (largest: 2-D bicubic GridSample 452, RoiAlign max 87,
NonMaxSuppression 79, bidirectional GRU 73, LSTM 71), each with its own bound and reason in LARGER.
Scan still emits its body once per step (capped at scan.MAX_STEPS; see its module docstring), so
a small case stays under the bound while a long scan would not. The second test builds each builder
that used to grow at a small and a large size and asserts the same count."""
from __future__ import annotations

import collections
import warnings

import coremltools as ct
import numpy as np
import pytest
from coremltools.converters.mil.mil.scope import ScopeSource

import onnx2mil
from onnx2mil import conformance
from onnx2mil.backend.convert import pipeline
from onnx2mil.backend.convert.config import Config
from onnx2mil.backend.convert.context import BuildContext
from onnx2mil.backend.convert.graph import collect_refusals, emit_program
from onnx2mil.backend.convert.loader import load_graph
from op_cases import all_cases

BOUND = 64
LARGER = {
    # op type: (bound, why its count is above BOUND yet fixed)
    "GridSample": (480, "one gather + weight per interpolation tap: bicubic 4 per spatial dim (16 in 2-D), "
                        "linear 2 per dim (8 in 3-D), with reflection/border coordinate math; set by mode and rank"),
    "LSTM": (96, "per direction: input projection, a while_loop whose body holds four gates with peepholes and "
                 "sequence_lens masking; bidirectional doubles it"),
    "GRU": (96, "per direction: input projection and a while_loop whose body holds three gates; bidirectional "
                "doubles it"),
    "NonMaxSuppression": (96, "pairwise IoU of the boxes, rank sorting and a while_loop over ranks: fixed"),
    "RoiAlign": (96, "bilinear sampling over a constant grid of sampling points, then the mode's reduction: fixed"),
}


def _ops(block):
    for op in block.operations:
        yield op
        for inner in op.blocks:
            yield from _ops(inner)


def emitted_ops(model, target, config=None, input_shapes=None) -> dict:
    """{(node name, op type): MIL ops emitted} for a model every node of which builds; None if a
    builder refuses a node."""
    graph = load_graph(model, input_shapes=input_shapes or {})
    ctx = BuildContext(graph, Config.load(config), target)
    if collect_refusals(ctx):
        return None
    with pipeline.coremltools_session():
        program = emit_program(ctx, input_shapes or {})
    counts = collections.Counter()
    for op in _ops(program.functions["main"]):
        handle = op.scopes.get(ScopeSource.EXIR_DEBUG_HANDLE)
        if op.op_type != "const" and handle:
            node = graph.nodes[handle[0]]
            counts[(node.name, node.op_type)] += 1
    return counts


def assert_bounded(counts, case_id: str):
    if counts is None:
        return
    for (name, op_type), n in counts.items():
        bound, why = LARGER.get(op_type, (BOUND, None))
        assert n <= bound, (f"{case_id}: node '{name}' ({op_type}) emits {n} MIL ops, over the bound of {bound}"
                            + (f" ({why})" if why else ""))


OP_CASES = all_cases()


@pytest.mark.parametrize("case", OP_CASES, ids=[c.id for c in OP_CASES])
def test_op_case_emission_is_bounded(case):
    assert_bounded(emitted_ops(case.model(), case.target or ct.target.iOS15, case.config), case.id)


def _feeds(case):
    inputs, _ = case.data_sets[0]
    initializers = {i.name for i in case.model.graph.initializer}
    names = [i.name for i in case.model.graph.input if i.name not in initializers]
    return {k: conformance._array(v) for k, v in zip(names, inputs)}


with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    ONNX_CASES = [c for c, op in conformance._collect(None) + conformance._collect_pytorch_converted(None)
                  if c.data_sets and op[0] not in conformance.NOT_EXPRESSIBLE_DOMAINS
                  and op[1] not in conformance.NOT_EXPRESSIBLE]


@pytest.mark.parametrize("case", ONNX_CASES, ids=[c.name for c in ONNX_CASES])
def test_onnx_case_emission_is_bounded(case):
    """As conformance.run_case builds them: parameter inputs frozen, fed at their data's shapes."""
    model, feeds, _ = conformance.freeze_parameter_inputs(case.model, _feeds(case))
    shapes = {k: tuple(np.shape(v)) for k, v in feeds.items()}
    try:
        counts = emitted_ops(model, conformance._target(), input_shapes=shapes)
    except onnx2mil.Onnx2MilError as e:  # refused while loading (conformance reports it as unsupported)
        pytest.skip(f"{type(e).__name__}: {e}")
    assert_bounded(counts, case.name)


# ---- the builders that used to grow: the same op count at a small and a large size -------------------
def _sizes():
    from op_cases.cumprod import cumprod
    from op_cases.nms import _crowd, nms
    from op_cases.pool import avg_pool, lp_pool, max_pool
    from op_cases.rnn import recurrent

    return {
        "maxpool_dilated_kernel": (max_pool("k2", (1, 1, 9, 9), kernel_shape=[2, 2], dilations=[2, 2],
                                            pads=[1, 1, 1, 1]),
                                   max_pool("k60x80", (1, 1, 1000, 1000), kernel_shape=[60, 80], dilations=[10, 10],
                                            strides=[10, 10], pads=[10, 20, 10, 20])),
        "avgpool_dilated_kernel": (avg_pool("k2", (1, 2, 9, 9), kernel_shape=[2, 2], dilations=[2, 3],
                                            count_include_pad=1, pads=[1, 1, 1, 1]),
                                   avg_pool("k9x7", (1, 2, 90, 90), kernel_shape=[9, 7], dilations=[2, 3],
                                            count_include_pad=1, pads=[1, 1, 1, 1])),
        "lppool_dilated_kernel": (lp_pool("k2", (1, 2, 8, 8), kernel_shape=[2, 2], dilations=[2, 3], opset=18),
                                  lp_pool("k8", (1, 2, 80, 80), kernel_shape=[8, 8], dilations=[2, 3], opset=18)),
        "maxpool_indices_kernel": (max_pool("k2", (1, 2, 6, 6, 6), kernel_shape=[2, 2, 2], n_outputs=2),
                                   max_pool("k9", (1, 2, 30, 30, 30), kernel_shape=[9, 9, 9], n_outputs=2)),
        "lstm_sequence": (recurrent("t2", "LSTM", steps=2, dirs=2, lens=[2, 1]),
                          recurrent("t300", "LSTM", steps=300, dirs=2, lens=[300, 17])),
        "gru_sequence": (recurrent("t2", "GRU", steps=2), recurrent("t300", "GRU", steps=300)),
        "rnn_sequence": (recurrent("t2", "RNN", steps=2), recurrent("t300", "RNN", steps=300)),
        "nms_boxes": (nms("6", *_crowd(6)), nms("3000", *_crowd(3000))),
        "cumprod_axis": (cumprod("3", np.ones((2, 3), np.float32), 1),
                         cumprod("5000", np.ones((2, 5000), np.float32), 1)),
    }


SIZES = _sizes()


@pytest.mark.parametrize("what", list(SIZES))
def test_op_count_does_not_grow_with_the_data(what):
    small, large = (emitted_ops(c.model(), ct.target.iOS15) for c in SIZES[what])
    assert small is not None and large is not None
    assert sorted(small.values()) == sorted(large.values()), \
        f"{what}: {dict(small)} ops at the small size, {dict(large)} at the large"
