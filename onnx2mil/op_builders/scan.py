"""ONNX Scan (opset 8 with its batch axis, opset 9+ with scan axes and directions) unrolled over a
static sequence: each step emits a copy of the body whose own tensor names carry the step number
(outer-scope names untouched), states thread from step to step, scan outputs are stacked.
The op count grows with the steps (capped at MAX_STEPS): a ``while_loop`` form, as Loop's, with
the scan outputs scattered into buffers sized from a first emission of the body, is not built yet
(issue 12)."""
from __future__ import annotations

import onnx
from coremltools.converters.mil import Builder as mb

from ..backend.convert.graph import emit_subgraph, subgraph_refusals
from ..backend.convert.registry import op_builder
from ._common import Refuse, is_static

MAX_STEPS = 256  # one copy of the body per step


def renamed_body(body: onnx.GraphProto, tag: str) -> onnx.GraphProto:
    """A copy of ``body`` whose inputs, initializers and node outputs are suffixed with ``tag``."""
    own = {i.name for i in body.input} | {t.name for t in body.initializer}
    own |= {o for n in body.node for o in n.output if o}
    rename = {name: f"{name}__{tag}" for name in own}
    copy = onnx.GraphProto()
    copy.CopyFrom(body)
    copy.name = f"{body.name or 'scan_body'}_{tag}"
    for vi in list(copy.input) + list(copy.output) + list(copy.value_info):
        vi.name = rename.get(vi.name, vi.name)
    for t in copy.initializer:
        t.name = rename[t.name]
    for n in copy.node:
        n.input[:] = [rename.get(i, i) for i in n.input]
        n.output[:] = [rename.get(o, o) for o in n.output]
        if n.name:
            n.name = f"{n.name}__{tag}"
    return copy


def _step(ctx, x, axis: int, t: int, name: str):
    begin = [0] * x.rank
    end = list(x.shape)
    begin[axis], end[axis] = t, t + 1
    squeeze = [i == axis for i in range(x.rank)]
    return mb.slice_by_index(x=x, begin=begin, end=end, squeeze_mask=squeeze, name=name)


def run_scan(ctx, node, body, states, scans, in_axes, in_reverse, tag: str):
    """Unroll the body; returns final states and per-output lists of step results (in time order)."""
    steps = scans[0].shape[in_axes[0]]
    outputs = [[None] * steps for _ in range(len(body.output) - len(states))]
    for t in range(steps):
        slices = [_step(ctx, x, a, steps - 1 - t if rev else t, ctx.tmp(f"{tag}_in{j}_t{t}"))
                  for j, (x, a, rev) in enumerate(zip(scans, in_axes, in_reverse))]
        copy = renamed_body(body, f"{tag}t{t}")
        results = emit_subgraph(ctx, copy, dict(zip([i.name for i in copy.input], states + slices)))
        states = results[:len(states)]
        for k, r in enumerate(results[len(states):]):
            outputs[k][t] = r
    return states, outputs


def _stack(ctx, values, axis: int, reverse: bool, name: str):
    values = values[::-1] if reverse else values
    return mb.stack(values=values, axis=axis, name=name)


@op_builder("Scan", min_opset=8)
def scan(node, ctx):
    body = node.attr("body")
    m = node.attr("num_scan_inputs")
    names = node.outputs
    if node.opset < 9:  # inputs: sequence_lens (optional), states [B, ...], scans [B, T, ...]
        vals = [ctx.var(n) for n in node.inputs[1:]]
        n_state = len(vals) - m
        batch = vals[0].shape[0]
        per_batch_states, per_batch_outs = [], []
        for b in range(batch):
            picked = [_step(ctx, v, 0, b, ctx.tmp(f"b{b}_{i}")) for i, v in enumerate(vals)]
            st, outs = run_scan(ctx, node, body, picked[:n_state], picked[n_state:], [0] * m,
                                [False] * m, f"b{b}")
            per_batch_states.append(st)
            per_batch_outs.append([mb.stack(values=o, axis=0, name=ctx.tmp(f"b{b}_out{k}"))
                                   for k, o in enumerate(outs)])
        results = [mb.stack(values=[s[k] for s in per_batch_states], axis=0, name=ctx.mil_name(names[k]))
                   for k in range(n_state)]
        results += [mb.stack(values=[o[k] for o in per_batch_outs], axis=0, name=ctx.mil_name(names[n_state + k]))
                    for k in range(len(per_batch_outs[0]))]
        ctx.set_output(node, *results)
        return
    vals = [ctx.var(n) for n in node.inputs]
    n_state = len(vals) - m
    scans = vals[n_state:]
    in_axes = [a % x.rank for a, x in zip(node.attr("scan_input_axes") or [0] * m, scans)]
    in_reverse = [bool(d) for d in (node.attr("scan_input_directions") or [0] * m)]
    states, outs = run_scan(ctx, node, body, vals[:n_state], scans, in_axes, in_reverse, "s")
    k_out = len(outs)
    out_axes = node.attr("scan_output_axes") or [0] * k_out
    out_reverse = [bool(d) for d in (node.attr("scan_output_directions") or [0] * k_out)]
    results = [mb.identity(x=s, name=ctx.mil_name(names[k])) for k, s in enumerate(states)]
    for k, values in enumerate(outs):
        axis = out_axes[k] % (values[0].rank + 1)
        results.append(_stack(ctx, values, axis, out_reverse[k], ctx.mil_name(names[n_state + k])))
    ctx.set_output(node, *results)


@scan.check
def _(node, ctx):
    body = node.attr("body")
    if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for n in body.node for a in n.attribute):
        raise Refuse("a Scan body with nested subgraphs")
    m = node.attr("num_scan_inputs")
    first_scan = len(node.inputs) - m
    if node.opset < 9:
        if node.has_input(0):
            raise Refuse("sequence_lens (per-batch lengths) is not supported")
        shape = ctx.shape(node.inputs[first_scan])
        if shape is None or not is_static(shape[:2]):
            raise Refuse("batch and sequence lengths must be static")
        steps = shape[0] * shape[1]
    else:
        shape = ctx.shape(node.inputs[first_scan])
        axes = node.attr("scan_input_axes") or [0] * m
        if shape is None or not isinstance(shape[axes[0] % len(shape)], int):
            raise Refuse("the scanned axis must have a static length (the body unrolls over it)")
        steps = shape[axes[0] % len(shape)]
    if steps > MAX_STEPS:
        raise Refuse(f"{steps} steps exceed {MAX_STEPS} unrolled copies of the body")
    if steps == 0:
        raise Refuse("zero-length scan")
    return "; ".join(subgraph_refusals(ctx, body)) or None
