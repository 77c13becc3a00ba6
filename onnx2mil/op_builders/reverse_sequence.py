"""ONNX ReverseSequence (``batch_axis``, ``time_axis``) -> MIL ``reverse_sequence`` with the
sequence lengths as int32."""
from __future__ import annotations

from coremltools.converters.mil import Builder as mb

from ..backend.convert.context import mil_dtype_of
from ..backend.convert.registry import op_builder
from ._common import require_layout_dtype


@op_builder("ReverseSequence", min_opset=10)
def reverse_sequence(node, ctx):
    lengths = ctx.const(node.inputs[1])
    lengths = mil_dtype_of(lengths) if lengths is not None else ctx.input(node, 1)
    y = mb.reverse_sequence(x=ctx.input(node, 0), lengths=lengths, seq_axis=node.attr("time_axis"),
                            batch_axis=node.attr("batch_axis"), name=ctx.mil_name(node.outputs[0]))
    ctx.set_output(node, y)


@reverse_sequence.check
def _(node, ctx):
    require_layout_dtype(ctx, node.inputs[0])
