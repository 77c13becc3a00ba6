"""The graph walk: check every node against its builder (collecting all refusals), then emit the
MIL program node by node in topological order."""
from __future__ import annotations

from typing import Mapping, Optional

import numpy as np
from coremltools.converters.mil import Builder as mb
from coremltools.converters.mil.mil import Function, Program, types
from coremltools.converters.mil.mil.types.symbolic import is_symbolic
from coremltools.converters.mil.mil import get_new_symbol

from ..errors import Refusal, UnsupportedOperatorError
from .context import BuildContext
from .registry import find_builder

_NP_TO_MIL = {
    np.dtype(np.float32): types.fp32, np.dtype(np.float64): types.fp32, np.dtype(np.float16): types.fp16,
    np.dtype(np.int32): types.int32, np.dtype(np.int64): types.int32, np.dtype(np.bool_): types.bool,
    np.dtype(np.int8): types.int8, np.dtype(np.uint8): types.uint8, np.dtype(np.int16): types.int16,
    np.dtype(np.uint16): types.uint16,
}


def mil_type(dtype) -> Optional[type]:
    return _NP_TO_MIL.get(np.dtype(dtype)) if dtype is not None else None


def collect_refusals(ctx: BuildContext) -> list[Refusal]:
    refusals = []
    g = ctx.graph
    for name in g.inputs:
        info = ctx.info(name)
        if info.dtype is None or mil_type(info.dtype) is None:
            refusals.append(Refusal(f"<input {name}>", "graph input", "", g.opset,
                                    f"input dtype {info.dtype} has no CoreML equivalent"))
        elif info.shape is None:
            refusals.append(Refusal(f"<input {name}>", "graph input", "", g.opset,
                                    "input has unknown rank; give its shape via inputs="))
    for node in g.nodes:
        builder = find_builder(node.op_type, node.domain)
        if builder is None:
            where = f" in domain '{node.domain}'" if node.domain else ""
            reason = f"no builder registered for {node.op_type}{where}"
        else:
            ctx.node = node
            reason = builder.refusal(node, ctx)
        if reason:
            refusals.append(Refusal(node.name, node.op_type, node.domain, node.opset, reason))
    ctx.node = None
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


def emit_program(ctx: BuildContext, input_shapes: Mapping[str, tuple] = {}) -> Program:
    """Emit ``main`` into a new pymil Program. Inputs/outputs carry sanitized ONNX names."""
    g = ctx.graph
    placeholders = {}
    for name in g.inputs:
        mil_name = ctx.mil_name(name)
        placeholders[mil_name] = mb.placeholder(
            shape=input_shape(ctx, name, input_shapes), dtype=mil_type(ctx.dtype(name)), name=mil_name)
    with Function(placeholders, opset_version=ctx.target) as func:
        for name in g.inputs:
            ctx.bind(name, func.inputs[ctx.mil_name(name)])
        for node in g.nodes:
            ctx.node = node
            find_builder(node.op_type, node.domain)(node, ctx)
            missing = [o for o in node.outputs if o and o not in ctx.name_map]
            if missing:
                raise RuntimeError(f"builder of {node.op_type} left outputs {missing} of '{node.name}' unbound")
        ctx.node = None
        func.set_outputs([_output_var(ctx, name) for name in g.outputs])
    prog = Program()
    prog.add_function("main", func)
    return prog


def _output_var(ctx: BuildContext, name: str):
    """A graph output must be produced by a real op named after the ONNX output."""
    var = ctx.var(name)
    wanted = ctx.mil_name(name)
    if var.op is None or var.op.op_type == "const" or var.name != wanted or name in ctx.graph.inputs:
        var = mb.identity(x=var, name=ctx.scratch(wanted) if var.name == wanted else wanted)
        ctx.bind(name, var)
    return var
