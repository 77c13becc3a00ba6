"""ONNX Cast / CastLike -> MIL ``cast`` (identity when MIL holds both types alike: int64 and int32
are both int32); Identity -> ``identity``; Dropout (inference) -> ``identity`` and an all-true mask
(as ONNX's reference; onnxruntime's opset < 12 kernel returns all-false). MIL casts
int8/uint8/int16/uint16 from iOS17 only; strings, float8 and 32/64-bit unsigned are refused.
"""
from __future__ import annotations

from typing import Optional

import coremltools as ct
import numpy as np
import onnx
from coremltools.converters.mil import Builder as mb
from coremltools.converters.mil.mil import types

from ..backend.convert.registry import op_builder
from ._common import Refuse, require_const

_MIL_DTYPE = {
    np.dtype(np.float32): "fp32", np.dtype(np.float64): "fp32", np.dtype(np.float16): "fp16",
    np.dtype(np.int32): "int32", np.dtype(np.int64): "int32", np.dtype(np.bool_): "bool",
}
_IOS17_DTYPE = {np.dtype(np.int8): "int8", np.dtype(np.uint8): "uint8",
                np.dtype(np.int16): "int16", np.dtype(np.uint16): "uint16"}


def mil_dtype(dtype, target) -> Optional[str]:
    """The MIL cast dtype string holding an ONNX numpy dtype, or None if MIL cannot at ``target``."""
    dt = np.dtype(dtype)
    if dt in _MIL_DTYPE:
        return _MIL_DTYPE[dt]
    return _IOS17_DTYPE.get(dt) if target >= ct.target.iOS17 else None


def _target_dtype(node, ctx):
    if node.op_type == "CastLike":
        return ctx.dtype(node.inputs[1])
    try:
        return onnx.helper.tensor_dtype_to_np_dtype(node.attr("to"))
    except (KeyError, ValueError):
        return None


@op_builder("Cast", "CastLike", min_opset=6)
def cast(node, ctx):
    x = ctx.input(node, 0)
    dtype = mil_dtype(_target_dtype(node, ctx), ctx.target)
    name = ctx.mil_name(node.outputs[0])
    if types.builtin_to_string(x.dtype) == dtype:
        ctx.set_output(node, mb.identity(x=x, name=name))
    else:
        ctx.set_output(node, mb.cast(x=x, dtype=dtype, name=name))


@cast.check
def _(node, ctx):
    if node.op_type == "CastLike" and node.opset < 15:
        raise Refuse("CastLike exists from opset 15")
    target = _target_dtype(node, ctx)
    if target is None or np.dtype(target).kind in "OUSV":
        what = f"to={node.attr('to')}" if node.op_type == "Cast" else "the target dtype"
        raise Refuse(f"{what} has no MIL tensor type (strings, bfloat16, float8 and 4-bit types do not exist in MIL)")
    for role, dt in (("target", target), ("source", ctx.dtype(node.inputs[0]))):
        if dt is not None and mil_dtype(dt, ctx.target) is None:
            extra = " (int8/uint8/int16/uint16 need minimum_deployment_target >= iOS17)" \
                if np.dtype(dt) in _IOS17_DTYPE else ""
            raise Refuse(f"{role} dtype {np.dtype(dt).name} has no MIL cast{extra}")


@op_builder("Identity", min_opset=1)
def identity(node, ctx):
    ctx.set_output(node, mb.identity(x=ctx.input(node, 0), name=ctx.mil_name(node.outputs[0])))


@identity.check
def _(node, ctx):
    if ctx.shape(node.inputs[0]) is None and ctx.dtype(node.inputs[0]) is None:
        raise Refuse("Identity of a non-tensor value (sequence or optional) has no MIL form")


@op_builder("Dropout", min_opset=7)
def dropout(node, ctx):
    x = ctx.input(node, 0)
    outputs = [mb.identity(x=x, name=ctx.mil_name(node.outputs[0]))]
    if len(node.outputs) > 1 and node.outputs[1]:
        mask = node.outputs[1]
        keep = True if node.opset >= 10 else np.array(1.0, dtype=types.nptype_from_builtin(x.dtype))
        outputs.append(mb.fill(shape=mb.shape(x=x, name=ctx.tmp("mask_shape")), value=keep,
                               name=ctx.mil_name(mask)))
    ctx.set_output(node, *outputs)


@dropout.check
def _(node, ctx):
    if node.opset < 12 or not node.has_input(2):
        return None
    training = require_const(ctx, node.inputs[2], "training_mode", "only inference Dropout converts")
    ratio = ctx.const(node.inputs[1]) if node.has_input(1) else np.array(0.5)
    if bool(training) and (ratio is None or float(ratio) != 0.0):
        raise Refuse("training_mode=True: random dropout has no MIL form; export the model in eval mode")
