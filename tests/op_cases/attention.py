"""Attention (opset 23): MHA/GQA/MQA, 3-D and 4-D inputs, bool/float masks (with a fully masked
row), is_causal with and without a KV cache, scale, softcap, present outputs, qk_matmul_output modes."""
import dataclasses

import coremltools as ct
import numpy as np

from harness import OpCase, rand


def attention(id, q, k, v, mask=None, past=None, n_outputs=1, opset=23, **attrs):
    inputs = {"Q": rand(*q, seed=1, low=-2, high=2), "K": rand(*k, seed=2, low=-2, high=2),
              "V": rand(*v, seed=3)}
    order = ["Q", "K", "V"]
    if mask is not None or past is not None:
        order.append("attn_mask" if mask is not None else "")
    if mask is not None:
        inputs["attn_mask"] = mask
    if past is not None:
        inputs["past_key"] = rand(*past[0], seed=4, low=-2, high=2)
        inputs["past_value"] = rand(*past[1], seed=5)
        order += ["past_key", "past_value"]
    return OpCase(f"attention_{id}", "Attention", inputs, attrs, input_order=order, n_outputs=n_outputs,
                  opset=opset)


def bool_mask(*shape, full_row=None):
    mask = np.random.default_rng(7).random(shape) > 0.4
    mask[..., 0] = True
    if full_row is not None:
        mask[..., full_row, :] = False
    return mask


CASES = [
    attention("mha_4d", (2, 3, 4, 8), (2, 3, 6, 8), (2, 3, 6, 5)),
    attention("gqa_4d_causal", (1, 4, 5, 8), (1, 2, 5, 8), (1, 2, 5, 8), is_causal=1),
    attention("mqa_4d_scale_softcap", (1, 4, 3, 8), (1, 1, 6, 8), (1, 1, 6, 4), scale=0.4, softcap=1.5),
    attention("mha_3d", (2, 4, 12), (2, 6, 12), (2, 6, 9), q_num_heads=3, kv_num_heads=3),
    attention("gqa_3d_causal", (1, 5, 16), (1, 5, 8), (1, 5, 8), q_num_heads=4, kv_num_heads=2, is_causal=1),
    attention("bool_mask_full_row", (1, 2, 4, 8), (1, 2, 6, 8), (1, 2, 6, 8), mask=bool_mask(4, 6, full_row=2)),
    attention("float_mask_causal", (1, 2, 4, 8), (1, 2, 4, 8), (1, 2, 4, 8),
              mask=rand(1, 1, 4, 4, seed=9, low=-3, high=1), is_causal=1),
    attention("bool_mask_causal_gqa", (2, 4, 3, 8), (2, 2, 3, 8), (2, 2, 3, 8), mask=bool_mask(2, 1, 3, 3),
              is_causal=1),
    attention("kv_cache_causal_present", (1, 2, 2, 8), (1, 2, 2, 8), (1, 2, 2, 8),
              past=((1, 2, 3, 8), (1, 2, 3, 8)), is_causal=1, n_outputs=3),
    attention("kv_cache_mask_3d", (1, 2, 8), (1, 2, 8), (1, 2, 8), mask=bool_mask(2, 5),
              past=((1, 2, 3, 4), (1, 2, 3, 4)), q_num_heads=2, kv_num_heads=2, n_outputs=3),
] + [
    # present_key/present_value precede qk_matmul_output, so these cases carry a cache to type them
    attention(f"qk_output_mode{mode}", (1, 2, 3, 8), (1, 2, 3, 8), (1, 2, 3, 8), mask=bool_mask(3, 5, full_row=1),
              past=((1, 2, 2, 8), (1, 2, 2, 8)), softcap=2.0, qk_matmul_output_mode=mode, n_outputs=4)
    for mode in range(4)
]
# Opset 25 attention windows around each query's absolute position.
CASES += [
    attention("window_causal_left2_opset25", (1, 2, 5, 8), (1, 2, 5, 8), (1, 2, 5, 8), is_causal=1,
              left_window_size=2, opset=25),
    attention("window_bidirectional_opset25", (1, 2, 5, 8), (1, 2, 5, 8), (1, 2, 5, 8), left_window_size=1,
              right_window_size=1, opset=25),
    attention("window_gqa_past_mask_opset25", (1, 4, 2, 8), (1, 2, 2, 8), (1, 2, 2, 8), mask=bool_mask(2, 6),
              past=((1, 2, 4, 8), (1, 2, 4, 8)), left_window_size=3, right_window_size=0, n_outputs=3, opset=25),
]
# Opset 24 nonpad_kv_seqlen: an external cache whose valid length varies per batch.
def nonpad(id, seqlen, **attrs):
    case = attention(id, (2, 2, 3, 8), (2, 2, 6, 8), (2, 2, 6, 8), opset=24, **attrs)
    case.inputs["nonpad_kv_seqlen"] = np.array(seqlen, dtype=np.int64)
    case.input_order = ["Q", "K", "V", "", "", "", "nonpad_kv_seqlen"]
    return case


CASES += [
    nonpad("nonpad_causal_opset24", [6, 4], is_causal=1),
    nonpad("nonpad_padding_only_opset24", [5, 2]),
]
# iOS18 targets take MIL's fused scaled_dot_product_attention (no softcap, boolean mask or qk output).
CASES += [
    dataclasses.replace(case, id=case.id + "_ios18", target=ct.target.iOS18)
    for case in CASES if case.id.split("attention_")[1] in (
        "mha_4d", "gqa_4d_causal", "mha_3d", "float_mask_causal", "kv_cache_causal_present", "bool_mask_full_row",
        "window_bidirectional_opset25")
] + [
    attention("mqa_4d_scale_ios18", (1, 4, 3, 8), (1, 1, 6, 8), (1, 1, 6, 4), scale=0.4),
]
CASES[-1].target = ct.target.iOS18
# Mode 2 shows masked scores as fp32's lowest value, which an fp16 build can only hold as -inf.
QK_MODE2 = next(c for c in CASES if c.id == "attention_qk_output_mode2")
QK_MODE2.fp16 = False

# Symbolic batch and sequence dims.
from op_cases.shape import SymbolicOpCase  # noqa: E402


def symbolic(case, dims):
    return SymbolicOpCase(case.id + "_symbolic", case.op_type, case.inputs, case.attrs, case.weights,
                          case.input_order, case.n_outputs, opset=case.opset, symbolic=dims)


CASES += [
    symbolic(attention("mha_4d", (2, 3, 4, 8), (2, 3, 6, 8), (2, 3, 6, 5)),
             {"Q": {0: "b", 2: "s"}, "K": {0: "b", 2: "l"}, "V": {0: "b", 2: "l"}}),
    symbolic(attention("gqa_3d", (1, 5, 16), (1, 6, 8), (1, 6, 8), q_num_heads=4, kv_num_heads=2),
             {"Q": {1: "s"}, "K": {1: "l"}, "V": {1: "l"}}),
]

REFUSED = [
    (symbolic(attention("causal", (1, 2, 4, 8), (1, 2, 4, 8), (1, 2, 4, 8), is_causal=1),
              {"Q": {2: "s"}, "K": {2: "s"}, "V": {2: "s"}}), "static query, key"),
    (symbolic(attention("gqa_3d_dynamic", (1, 5, 16), (1, 6, 8), (1, 6, 8), q_num_heads=4, kv_num_heads=2),
              {"Q": {0: "b", 1: "s"}, "K": {0: "b", 1: "l"}, "V": {0: "b", 1: "l"}}), "static batch or sequence"),
]
