"""ONNX Transpose (``perm``, default reversed axes) -> MIL ``transpose``."""
from __future__ import annotations

from coremltools.converters.mil import Builder as mb

from ..backend.convert.registry import op_builder
from ._common import Refuse, require_layout_dtype, require_rank


@op_builder("Transpose")
def transpose(node, ctx):
    x = ctx.input(node, 0)
    perm = node.attr("perm")
    perm = list(perm) if perm is not None else list(range(x.rank))[::-1]
    ctx.set_output(node, mb.transpose(x=x, perm=perm, name=ctx.mil_name(node.outputs[0])))


@transpose.check
def _(node, ctx):
    require_layout_dtype(ctx, node.inputs[0])
    rank = require_rank(ctx, node.inputs[0])
    perm = node.attr("perm")
    if perm is not None and sorted(perm) != list(range(rank)):
        raise Refuse(f"perm {list(perm)} is not a permutation of the {rank} axes")
