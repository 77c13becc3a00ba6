"""The graph walk: check every node against its builder (collecting all refusals), then emit the
MIL program node by node in topological order."""
from __future__ import annotations

import contextlib
from types import MappingProxyType
from typing import Mapping, Optional

import coremltools as ct
import numpy as np
import onnx
from coremltools.converters.mil import Builder as mb
from coremltools.converters.mil.mil import Function, Program, types
from coremltools.converters.mil.mil.types.symbolic import is_symbolic
from coremltools.converters.mil.mil import get_new_symbol
from coremltools.converters.mil.mil.scope import ScopeInfo, ScopeSource

from ...errors import BuildError, Onnx2MilError, Refusal
from .context import BuildContext
from .pipeline import COREMLTOOLS_LOCK
from .loader import constant_value, tensor_value
from .node import OnnxNode, canonical_domain
from .registry import find_builder

def mil_type(dtype, target=None) -> Optional[type]:
    """The MIL dtype of a model input: CoreML takes fp32/fp16/int32/bool inputs, so float64 -> fp32,
    fp16 -> fp16 (fp32 before iOS16), and every integer type -> int32 (values are range-checked
    when fed)."""
    if dtype is None:
        return None
    dtype = np.dtype(dtype)
    if dtype == np.float16:
        return types.fp16 if target is None or target >= ct.target.iOS16 else types.fp32
    if dtype.kind == "f" and dtype.itemsize in (4, 8):
        return types.fp32
    if dtype.kind in "iu" and dtype.itemsize <= 8:
        return types.int32
    if dtype == np.bool_:
        return types.bool
    return None


def node_refusal(ctx: BuildContext, node) -> Optional[str]:
    builder = find_builder(node.op_type, node.domain)
    if builder is None:
        where = f" in domain '{node.domain}'" if node.domain else ""
        return f"no builder registered for {node.op_type}{where}"
    outer, ctx.node = ctx.node, node
    try:
        return builder.refusal(node, ctx)
    except Onnx2MilError:
        raise
    except Exception as e:  # noqa: BLE001 - a check that cannot judge the node refuses it, with why
        return f"the support check failed: {type(e).__name__}: {e}"
    finally:
        ctx.node = outer


def subgraph_nodes(ctx: BuildContext, graph: onnx.GraphProto) -> list[OnnxNode]:
    """A nested graph's nodes; its initializers and Constant nodes become build-time constants."""
    for t in graph.initializer:
        ctx.graph.constants[t.name] = tensor_value(t)
    nodes = []
    for p in graph.node:
        node = OnnxNode(p, ctx.graph.opsets.get(canonical_domain(p.domain), 1), next(ctx.node_counter))
        if node.op_type == "Constant" and not node.domain:
            ctx.graph.constants[p.output[0]] = constant_value(node)
        else:
            nodes.append(node)
    return nodes


def subgraph_refusals(ctx: BuildContext, graph: onnx.GraphProto) -> list[str]:
    """Reasons, one per nested node that cannot be built, each naming the node."""
    out = []
    for node in subgraph_nodes(ctx, graph):
        reason = node_refusal(ctx, node)
        if reason:
            out.append(f"{graph.name or 'subgraph'} node '{node.name}' ({node.op_type}): {reason}")
    return out


def emit_subgraph(ctx: BuildContext, graph: onnx.GraphProto, bindings: Mapping[str, object]) -> list:
    """Emit a nested graph into the current MIL block; ``bindings`` give its formal inputs.
    Outer-scope tensors resolve through ``ctx`` as usual. Returns the graph's output vars."""
    for name, var in bindings.items():
        ctx.bind(name, var)
    outer = ctx.node
    for node in subgraph_nodes(ctx, graph):
        emit_node(ctx, node)
    ctx.node = outer
    return [ctx.var(o.name) for o in graph.output]


MAX_RANK = 5  # Core ML tensors have rank <= 5


def _rank_refusal(ctx: BuildContext, node) -> Optional[str]:
    high = [(o, ctx.rank(o)) for o in node.outputs if o and (ctx.rank(o) or 0) > MAX_RANK]
    if high:
        return ", ".join(f"output '{o}' has rank {r}" for o, r in high) + f" (Core ML tensors have rank <= {MAX_RANK})"
    return None


def collect_refusals(ctx: BuildContext) -> list[Refusal]:
    refusals = []
    g = ctx.graph
    for name in g.inputs:
        info = ctx.info(name)
        if info.dtype is None or mil_type(info.dtype, ctx.target) is None:
            refusals.append(Refusal(f"<input {name}>", "graph input", "", g.opset,
                                    f"input dtype {info.dtype} has no CoreML equivalent"))
        elif info.shape is None:
            refusals.append(Refusal(f"<input {name}>", "graph input", "", g.opset,
                                    "input has unknown rank; give its shape via inputs="))
    for node in g.nodes:
        reason = node_refusal(ctx, node) or _rank_refusal(ctx, node)
        if reason:
            refusals.append(Refusal(node.name, node.op_type, node.domain, node.opset, reason))
    return refusals


def input_shape(ctx: BuildContext, name: str, overrides: Mapping[str, tuple]) -> tuple:
    """Static dims stay ints; symbolic or unknown dims become MIL symbols (shared by dim_param)."""
    shape = overrides.get(name, ctx.shape(name))
    symbols = ctx.symbols
    out = []
    for d in shape:
        if isinstance(d, (int, np.integer)) and d >= 0:
            out.append(int(d))
        elif is_symbolic(d):
            out.append(d)
        else:
            key = d if isinstance(d, str) else object()
            if key not in symbols:
                symbols[key] = get_new_symbol()
            out.append(symbols[key])
    return tuple(out)


def scalar_inputs(ctx: BuildContext, input_shapes: Mapping[str, tuple] = MappingProxyType({})) -> list[str]:
    return [n for n in ctx.graph.inputs if len(input_shapes.get(n, ctx.shape(n))) == 0]


def node_scope(index: Optional[int]):
    """Ops emitted for the ``index``-th top-level ONNX node carry it as their debug handle.
    coremltools' passes copy a replaced var's scopes onto the ops that replace it, so after the
    passes every op still says which ONNX node it computes (see ``pipeline.resolve_names``)."""
    if index is None:
        return contextlib.nullcontext()
    return mb.scope(ScopeInfo(source=ScopeSource.EXIR_DEBUG_HANDLE, data=[index]))


def emit_node(ctx: BuildContext, node) -> None:
    """Run ``node``'s builder. Whatever coremltools raises while the builder emits (its type and
    value inference rejects an op) becomes a BuildError naming the ONNX node, op and opset."""
    ctx.node = node
    try:
        find_builder(node.op_type, node.domain)(node, ctx)
    except Onnx2MilError:
        raise
    except Exception as e:  # noqa: BLE001 - coremltools raises ValueError, TypeError, KeyError, ...
        raise BuildError(node.name, node.op_type, node.domain, node.opset, f"{type(e).__name__}: {e}") from e
    missing = [o for o in node.outputs if o and o not in ctx.name_map]
    if missing:
        raise BuildError(node.name, node.op_type, node.domain, node.opset,
                         f"its builder left outputs {missing} unbound")


def emit_program(ctx: BuildContext, input_shapes: Mapping[str, tuple] = MappingProxyType({})) -> Program:
    """Emit ``main`` into a new pymil Program. Inputs/outputs carry sanitized ONNX names."""
    # the MIL builder emits into the block on top of a module-global stack: one build at a time
    with COREMLTOOLS_LOCK:
        g = ctx.graph
        placeholders = {}
        for name in g.inputs:
            mil_name = ctx.mil_name(name)
            # CoreML has no rank-0 inputs: a scalar arrives as shape (1,) and is squeezed inside.
            shape = input_shape(ctx, name, input_shapes) or (1,)
            placeholders[mil_name] = mb.placeholder(shape=shape, dtype=mil_type(ctx.dtype(name), ctx.target),
                                                    name=mil_name)
        with Function(placeholders, opset_version=ctx.target) as func:
            for name in g.inputs:
                var = func.inputs[ctx.mil_name(name)]
                if name in scalar_inputs(ctx, input_shapes):
                    var = mb.squeeze(x=var, name=ctx.scratch(f"{ctx.mil_name(name)}_scalar"))
                if ctx.dtype(name) == np.float16 and var.dtype != types.fp16:
                    # fp16 inputs arrive as fp32 before iOS16; the graph computes in fp16 as ONNX does
                    var = mb.cast(x=var, dtype="fp16", name=ctx.scratch(f"{ctx.mil_name(name)}_fp16"))
                ctx.bind(name, var)
            producer = {}
            for index, node in enumerate(g.nodes):
                with node_scope(index):
                    emit_node(ctx, node)
                producer.update((o, index) for o in node.outputs if o)
            ctx.node = None
            consumed = {i for node in g.nodes for i in node.inputs}
            outputs = []
            for name in g.outputs:
                with node_scope(producer.get(name)):
                    outputs.append(_output_var(ctx, name, name in consumed))
            func.set_outputs(outputs)
        prog = Program()
        prog.add_function("main", func)
        return prog


def _output_var(ctx: BuildContext, name: str, consumed: bool = False):
    """A graph output must be produced by a real op named after the ONNX output. ``consumed``:
    other nodes read it too (an intermediate exposed by ``outputs=``): it is given its own
    identity, since passes that fuse its op into a consumer cannot delete a block output."""
    var = ctx.var(name)
    wanted = ctx.mil_name(name)
    if consumed and var.op is not None and var.op.op_type != "const":
        var = mb.identity(x=var, name=ctx.scratch(wanted))
        ctx.bind(name, var)
        return var
    if var.dtype == types.fp16 and ctx.target < ct.target.iOS16:  # no fp16 outputs before iOS16
        var = mb.cast(x=var, dtype="fp32", name=ctx.scratch(wanted) if var.name == wanted else wanted)
        ctx.bind(name, var)
    if var.op is None or var.op.op_type == "const" or var.name != wanted or name in ctx.graph.inputs:
        var = mb.identity(x=var, name=ctx.scratch(wanted) if var.name == wanted else wanted)
        ctx.bind(name, var)
    return var
