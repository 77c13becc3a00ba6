"""ONNX ReverseSequence (``batch_axis``, ``time_axis``) -> MIL ``reverse_sequence`` with the
sequence lengths as int32."""
from __future__ import annotations

import numpy as np
from coremltools.converters.mil import Builder as mb

from ..backend.convert.context import mil_dtype_of
from ..backend.convert.registry import op_builder


@op_builder("ReverseSequence", min_opset=10)
def reverse_sequence(node, ctx):
    lengths = ctx.const(node.inputs[1])
    lengths = mil_dtype_of(lengths) if lengths is not None else ctx.input(node, 1)
    y = mb.reverse_sequence(x=ctx.input(node, 0), lengths=lengths, seq_axis=node.attr("time_axis"),
                            batch_axis=node.attr("batch_axis"), name=ctx.mil_name(node.outputs[0]))
    ctx.set_output(node, y)


@reverse_sequence.check
def _(node, ctx):
    dtype = ctx.dtype(node.inputs[0])
    if dtype is not None and not (dtype in (np.float32, np.float16, np.float64, np.int32, np.int64, np.bool_)):
        return f"data dtype {dtype}: MIL reverse_sequence takes fp16, fp32, int32, bool"
    return None
