"""ONNX NonZero -> MIL ``non_zero`` ([count, rank], row-major order) transposed to ONNX's
[rank, count]. A result with no non-zero element is a zero-size tensor, which CoreML lacks."""
from __future__ import annotations

import numpy as np
from coremltools.converters.mil import Builder as mb

from ..backend.convert.registry import op_builder
from ._common import Refuse, require_rank

_DTYPES = (np.float16, np.float32, np.float64, np.int32, np.int64, np.bool_)


@op_builder("NonZero", min_opset=9)
def nonzero(node, ctx):
    out = node.outputs[0]
    where = mb.non_zero(x=ctx.input(node, 0), name=ctx.tmp("rows"))
    ctx.set_output(node, mb.transpose(x=where, perm=[1, 0], name=ctx.mil_name(out)))


@nonzero.check
def _(node, ctx):
    dtype = ctx.dtype(node.inputs[0])
    if dtype is not None and dtype not in _DTYPES:
        raise Refuse(f"input dtype {dtype}: MIL non_zero takes fp16, fp32, int32, bool")
    rank = require_rank(ctx, node.inputs[0])
    if rank == 0:
        raise Refuse("rank-0 input: ONNX's [0, count] result is a zero-size tensor (CoreML has none)")
