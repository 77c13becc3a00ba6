"""ONNX Attention (opset 23+: MHA/GQA/MQA, 3-D or 4-D Q/K/V, bool or float attn_mask, is_causal,
opset 24's nonpad_kv_seqlen, opset 25's left/right windows, scale, softcap, past/present key-value
cache, qk_matmul_output) -> MIL matmul / softmax / matmul, or iOS18's fused
``scaled_dot_product_attention`` when that covers the node.

Masked scores become fp32's lowest value, as in onnxruntime (the fp16 pass turns it into -inf, which
coremltools keeps for attention masks); rows a boolean mask disallows entirely would be NaN after
the softmax and are zeroed instead, as the ONNX errata asks.
"""
from __future__ import annotations

import coremltools as ct
import numpy as np
from coremltools.converters.mil import Builder as mb
from coremltools.converters.mil.mil import types

from ..backend.convert.registry import op_builder
from ._common import Refuse, const_like

MASKED = float(np.finfo(np.float32).min)


def _static(d) -> bool:
    return isinstance(d, int)


def split_heads(ctx, x, heads: int, what: str):
    """(B, S, heads * D) -> (B, heads, S, D); B or S must be static (reshape takes one -1)."""
    b, s, hidden = x.shape
    shape = [b if _static(b) else -1, s if _static(s) else -1, heads, hidden // heads]
    x = mb.reshape(x=x, shape=np.array(shape, dtype=np.int32), name=ctx.tmp(f"{what}_heads"))
    return mb.transpose(x=x, perm=[0, 2, 1, 3], name=ctx.tmp(f"{what}_bhsd"))


def repeat_heads(ctx, x, groups: int, what: str):
    """(B, Hkv, L, D) -> (B, Hkv * groups, L, D), each kv head repeated for its group of q heads."""
    b, h, length, d = x.shape
    x = mb.expand_dims(x=x, axes=[2], name=ctx.tmp(f"{what}_expand"))
    x = mb.tile(x=x, reps=[1, 1, groups, 1, 1], name=ctx.tmp(f"{what}_tile"))
    shape = [b if _static(b) else -1, h * groups, length if _static(length) else -1, d]
    return mb.reshape(x=x, shape=np.array(shape, dtype=np.int32), name=ctx.tmp(f"{what}_groups"))


def _windows(node) -> tuple[int, int]:
    return tuple(node.attr(a) if node.attr(a) is not None else -1 for a in ("left_window_size", "right_window_size"))


def positions_allowed(node, ctx, q_len, total, past):
    """Which keys each query may attend by position alone: is_causal and opset 25's left/right
    windows around the query's absolute position (i + past, or i + nonpad_kv_seqlen[b] - q_len
    with an external cache), and opset 24's padding (key j < nonpad_kv_seqlen[b]). A constant
    (q_len, total) array, a (B, 1, q_len, total) var when nonpad_kv_seqlen is given, or None."""
    causal = bool(node.attr("is_causal"))
    left, right = _windows(node)
    seqlen = ctx.input(node, 6) if len(node.inputs) > 6 and node.inputs[6] else None
    if seqlen is None:
        if not causal and left < 0 and right < 0:
            return None
        query = np.arange(q_len)[:, None] + past
        key = np.arange(total)[None, :]
        allowed = np.ones((q_len, total), dtype=bool)
        if causal:
            allowed &= key <= query
        if left >= 0:
            allowed &= key >= query - left
        if right >= 0:
            allowed &= key <= query + right
        return allowed
    key = np.arange(total, dtype=np.int32).reshape(1, 1, 1, total)
    seq = mb.reshape(x=seqlen, shape=np.array([-1, 1, 1, 1], dtype=np.int32), name=ctx.tmp("seqlen"))
    allowed = mb.less(x=key, y=seq, name=ctx.tmp("not_padding"))
    query = mb.add(x=seq, y=(np.arange(q_len, dtype=np.int32) - q_len).reshape(1, 1, q_len, 1),
                   name=ctx.tmp("query_position"))
    bounds = ([(mb.less_equal, 0)] if causal else []) + ([(mb.greater_equal, -left)] if left >= 0 else []) + (
        [(mb.less_equal, right)] if right >= 0 else [])
    for i, (compare, shift) in enumerate(bounds):
        edge = query if not shift else mb.add(x=query, y=np.int32(shift), name=ctx.tmp(f"edge_{i}"))
        allowed = mb.logical_and(x=allowed, y=compare(x=key, y=edge, name=ctx.tmp(f"bound_{i}")),
                                 name=ctx.tmp(f"allowed_{i}"))
    return allowed


def _may_empty_a_row(positional) -> bool:
    """Whether the positional mask may disallow every key of some query (known only for constants)."""
    return positional is not None and (not isinstance(positional, np.ndarray) or not positional.any(axis=1).all())


def _padded_mask(ctx, mask, total: int):
    """A mask shorter than the keys is padded with disallowed positions, as the ONNX reference does."""
    last = mask.shape[-1]
    if not isinstance(last, int) or not isinstance(total, int) or last >= total:
        return mask
    filler = np.zeros(mask.shape[:-1] + (total - last,), dtype=bool) if mask.dtype == types.bool else \
        const_like(np.full(mask.shape[:-1] + (total - last,), MASKED), mask)
    return mb.concat(values=[mask, filler], axis=-1, name=ctx.tmp("mask_padded"))


@op_builder("Attention", min_opset=23)
def attention(node, ctx):
    q, k, v = (ctx.input(node, i) for i in range(3))
    out = node.outputs[0]
    outputs = node.outputs + [""] * (4 - len(node.outputs))
    three_d = q.rank == 3
    if three_d:
        q = split_heads(ctx, q, node.attr("q_num_heads"), "q")
        k = split_heads(ctx, k, node.attr("kv_num_heads"), "k")
        v = split_heads(ctx, v, node.attr("kv_num_heads"), "v")
    past = 0
    if node.has_input(4):
        past_key, past_value = ctx.input(node, 4), ctx.input(node, 5)
        past = past_key.shape[2]
        k = mb.concat(values=[past_key, k], axis=2,
                      name=ctx.mil_name(outputs[1]) if outputs[1] else ctx.tmp("present_key"))
        v = mb.concat(values=[past_value, v], axis=2,
                      name=ctx.mil_name(outputs[2]) if outputs[2] else ctx.tmp("present_value"))
    present = (k, v)
    if q.shape[1] != k.shape[1]:
        groups = q.shape[1] // k.shape[1]
        k, v = repeat_heads(ctx, k, groups, "k"), repeat_heads(ctx, v, groups, "v")

    scale = node.attr("scale")
    scale = 1.0 / np.sqrt(q.shape[-1]) if scale is None else float(scale)
    mask = ctx.input(node, 3) if node.has_input(3) else None
    if mask is not None and mask.dtype != types.bool and mask.dtype != q.dtype:
        mask = mb.cast(x=mask, dtype=types.builtin_to_string(q.dtype), name=ctx.tmp("mask_cast"))
    if mask is not None:
        mask = _padded_mask(ctx, mask, k.shape[2])
    positional = positions_allowed(node, ctx, q.shape[2], k.shape[2], past)
    y_name = ctx.tmp("bhsd") if three_d else ctx.mil_name(out)
    if _fusable(node, ctx, q, mask, positional, outputs):
        y, stages = _fused(ctx, q, k, v, mask, positional, scale, y_name), None
    else:
        y, stages = _decomposed(node, ctx, q, k, v, mask, positional, scale, y_name)
    if three_d:
        y = mb.transpose(x=y, perm=[0, 2, 1, 3], name=ctx.tmp("bshd"))
        b, s = y.shape[:2]
        shape = [b if _static(b) else -1, s if _static(s) else -1, y.shape[2] * y.shape[3]]
        y = mb.reshape(x=y, shape=np.array(shape, dtype=np.int32), name=ctx.mil_name(out))
    results = [y, *present]
    if outputs[3]:
        stage = stages[node.attr("qk_matmul_output_mode")]
        results.append(mb.identity(x=stage, name=ctx.mil_name(outputs[3])))
    ctx.set_output(node, *results)


def _fusable(node, ctx, q, mask, positional, outputs) -> bool:
    """iOS18's fused scaled_dot_product_attention covers this node (boolean masks that may disallow
    a whole row are left to the expansion: such a row would come out NaN instead of zeros)."""
    return (ctx.target >= ct.target.iOS18 and not float(node.attr("softcap") or 0.0) and not outputs[3]
            and (mask is None or mask.dtype != types.bool) and not _may_empty_a_row(positional)
            and not (q.dtype == types.fp16 and node.attr("softmax_precision") == 1))


def _fused(ctx, q, k, v, mask, positional, scale: float, name: str):
    """MIL scaled_dot_product_attention, which scales by 1/sqrt(head size): other scales go into Q."""
    if not np.isclose(scale * np.sqrt(q.shape[-1]), 1.0, rtol=1e-7, atol=0):
        q = mb.mul(x=q, y=const_like(scale * np.sqrt(q.shape[-1]), q), name=ctx.tmp("q_rescaled"))
    if positional is not None and mask is not None:
        bias = const_like(np.where(positional, 0.0, MASKED), q)
        mask = mb.add(x=mask, y=bias, name=ctx.tmp("mask_positional"))
    elif positional is not None:
        mask = positional
    return mb.scaled_dot_product_attention(query=q, key=k, value=v, attn_mask=mask, name=name)


def _decomposed(node, ctx, q, k, v, mask, positional, scale: float, name: str):
    """matmul -> (softcap) -> mask -> softmax -> matmul; also returns the qk_matmul_output stages."""
    # Scaled before the matmul, as the spec advises, so fp16 scores do not overflow on the way.
    q = mb.mul(x=q, y=const_like(scale, q), name=ctx.tmp("q_scaled"))
    scores = mb.matmul(x=q, y=k, transpose_y=True, name=ctx.tmp("qk"))
    stages = [scores]
    softcap = float(node.attr("softcap") or 0.0)
    if softcap > 0:
        capped = mb.tanh(x=mb.mul(x=scores, y=const_like(1.0 / softcap, q), name=ctx.tmp("cap_in")),
                         name=ctx.tmp("cap_tanh"))
        scores = mb.mul(x=capped, y=const_like(softcap, q), name=ctx.tmp("softcapped"))
    stages.append(scores)

    allowed = None
    if mask is not None and mask.dtype == types.bool:
        allowed = mask if positional is None else mb.logical_and(x=mask, y=positional, name=ctx.tmp("allowed"))
    elif positional is not None:
        allowed = positional
    if mask is not None and mask.dtype != types.bool:
        scores = mb.add(x=scores, y=mask, name=ctx.tmp("masked_float"))
    if allowed is not None:
        scores = mb.select(cond=allowed, a=scores, b=const_like(MASKED, q), name=ctx.tmp("masked"))
    stages.append(scores)

    stashed = q.dtype == types.fp16 and node.attr("softmax_precision") == 1
    if stashed:  # softmax_precision=FLOAT on fp16 inputs
        scores = mb.cast(x=scores, dtype="fp32", name=ctx.tmp("softmax_fp32_in"))
    probs = mb.softmax(x=scores, axis=-1, name=ctx.tmp("probs"))
    if stashed:
        probs = mb.cast(x=probs, dtype="fp16", name=ctx.tmp("probs_fp16"))
    if (mask is not None and mask.dtype == types.bool) or _may_empty_a_row(positional):
        # fully disallowed rows give zeros, not a mean
        probs = mb.select(cond=allowed, a=probs, b=const_like(0.0, q), name=ctx.tmp("probs_masked"))
    stages.append(probs)

    return mb.matmul(x=probs, y=v, name=name), stages


@attention.check
def _(node, ctx):
    shapes = [ctx.shape(node.inputs[i]) for i in range(3)]
    if any(s is None for s in shapes) or len({len(s) for s in shapes}) != 1 or len(shapes[0]) not in (3, 4):
        raise Refuse("Q, K and V must all be 3-D or all 4-D with known rank")
    if any(ctx.dtype(node.inputs[i]) not in (np.float16, np.float32, np.float64) for i in range(3)):
        raise Refuse("Q, K and V must be float tensors")
    nonpad = len(node.inputs) > 6 and bool(node.inputs[6])
    if nonpad and node.has_input(4):
        raise Refuse("nonpad_kv_seqlen cannot be combined with past_key/past_value (ONNX spec)")
    if node.has_input(4) != node.has_input(5):
        raise Refuse("past_key and past_value must be given together")
    if node.attr("qk_matmul_output_mode") not in (0, 1, 2, 3):
        raise Refuse(f"qk_matmul_output_mode {node.attr('qk_matmul_output_mode')} is not 0-3")
    q, k, v = shapes
    if len(q) == 3:
        heads = node.attr("q_num_heads"), node.attr("kv_num_heads")
        if not all(heads):
            raise Refuse("3-D Q/K/V need the q_num_heads and kv_num_heads attributes")
        if not all(_static(s[2]) for s in shapes):
            raise Refuse("3-D Q/K/V need a static hidden size to split heads")
        if not all(_static(s[0]) or _static(s[1]) for s in shapes):
            raise Refuse("3-D Q/K/V need a static batch or sequence dim (reshape infers one)")
        q_heads, kv_heads = heads
        k_len = k[1]
    else:
        q_heads, kv_heads, k_len = q[1], k[1], k[2]
        if not (_static(q_heads) and _static(kv_heads)):
            raise Refuse("the head counts (dim 1 of Q and K) must be static")
    if q_heads % kv_heads:
        raise Refuse(f"q heads {q_heads} are not a multiple of kv heads {kv_heads}")
    past = ctx.shape(node.inputs[4]) if node.has_input(4) else None
    if q_heads != kv_heads and not (_static(k[0]) or (_static(k_len) and (past is None or _static(past[2])))):
        raise Refuse("grouped-query attention needs a static batch or kv sequence length")
    if node.attr("is_causal") or max(_windows(node)) >= 0 or nonpad:
        q_len = q[1] if len(q) == 3 else q[2]
        if not (_static(q_len) and _static(k_len) and (past is None or _static(past[2]))):
            raise Refuse("is_causal, attention windows and nonpad_kv_seqlen need static query, key and past "
                    "sequence lengths")
    if node.has_input(3) and ctx.dtype(node.inputs[3]) not in (np.bool_, np.float16, np.float32, np.float64):
        raise Refuse(f"attn_mask dtype {ctx.dtype(node.inputs[3])} (bool or float masks only)")
