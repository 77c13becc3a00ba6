"""ONNX If -> MIL ``cond``; ONNX Loop (without scan outputs) -> MIL ``while_loop``.

Branch and body graphs are emitted into the nested MIL blocks through the same builders; outer-scope
tensors resolve through the build context. An If whose condition is a build-time constant is
inlined (only the taken branch is built).
"""
from __future__ import annotations

import numpy as np
from coremltools.converters.mil import Builder as mb

from ..backend.convert.graph import emit_subgraph, subgraph_refusals
from ..backend.convert.registry import op_builder
from ._common import Refuse

_SCALAR = np.zeros(0, dtype=np.int32)  # reshape target of rank 0


def _bind_outputs(node, ctx, values):
    ctx.set_output(node, *[mb.identity(x=v, name=ctx.mil_name(o)) for o, v in zip(node.outputs, values)])


@op_builder("If")
def if_(node, ctx):
    pred = ctx.const(node.inputs[0])
    if pred is not None:
        branch = node.attr("then_branch") if bool(pred.reshape(-1)[0]) else node.attr("else_branch")
        _bind_outputs(node, ctx, emit_subgraph(ctx, branch, {}))
        return
    cond = ctx.input(node, 0)
    if cond.rank:
        cond = mb.squeeze(x=mb.reshape(x=cond, shape=[1], name=ctx.tmp("pred_flat")),
                          name=ctx.tmp("pred"))
    outs = mb.cond(pred=cond,
                   _true_fn=lambda: tuple(emit_subgraph(ctx, node.attr("then_branch"), {})),
                   _false_fn=lambda: tuple(emit_subgraph(ctx, node.attr("else_branch"), {})),
                   name=ctx.tmp("cond"))
    _bind_outputs(node, ctx, outs if isinstance(outs, (list, tuple)) else [outs])


@if_.check
def _(node, ctx):
    pred = ctx.const(node.inputs[0])
    if pred is not None:
        branch = node.attr("then_branch") if bool(pred.reshape(-1)[0]) else node.attr("else_branch")
        reasons = subgraph_refusals(ctx, branch)
    else:
        reasons = subgraph_refusals(ctx, node.attr("then_branch")) + subgraph_refusals(ctx, node.attr("else_branch"))
    return "; ".join(reasons) or None


@op_builder("Loop")
def loop(node, ctx):
    body = node.attr("body")
    n_state = len(node.inputs) - 2
    trip = ctx.input(node, 0)
    trip = mb.cast(x=mb.reshape(x=trip, shape=_SCALAR, name=ctx.tmp("trip")), dtype="int32",
                   name=ctx.tmp("trip_i32")) if trip is not None else None
    keep_going = ctx.input(node, 1)
    keep_going = (mb.reshape(x=keep_going, shape=_SCALAR, name=ctx.tmp("cond0"))
                  if keep_going is not None else np.bool_(True))
    state = [ctx.var(n) for n in node.inputs[2:]]
    body_in = [i.name for i in body.input]

    def cond_fn(i, go, *_):
        if trip is None:
            return mb.identity(x=go, name=ctx.tmp("go"))
        below = mb.less(x=i, y=trip, name=ctx.tmp("below_trip"))
        return mb.logical_and(x=below, y=go, name=ctx.tmp("go"))

    def body_fn(i, go, *vs):
        iteration = mb.reshape(x=i, shape=_SCALAR, name=ctx.tmp("iter"))
        outs = emit_subgraph(ctx, body, dict(zip(body_in, [iteration, go, *vs])))
        go_next = mb.reshape(x=outs[0], shape=_SCALAR, name=ctx.tmp("go_next"))
        i_next = mb.add(x=i, y=np.int32(1), name=ctx.tmp("i_next"))
        return (i_next, go_next, *outs[1:1 + n_state])

    results = mb.while_loop(_cond=cond_fn, _body=body_fn,
                            loop_vars=(np.int32(0), keep_going, *state), name=ctx.tmp("loop"))
    _bind_outputs(node, ctx, results[2:])


@loop.check
def _(node, ctx):
    body = node.attr("body")
    n_state = len(node.inputs) - 2
    if len(body.output) - 1 > n_state:
        raise Refuse(f"{len(body.output) - 1 - n_state} scan output(s): MIL while_loop carries only loop "
                "state, it cannot concatenate per-iteration outputs")
    return "; ".join(subgraph_refusals(ctx, body)) or None
