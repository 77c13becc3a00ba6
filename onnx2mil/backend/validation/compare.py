"""Metrics of one tensor against its reference, and the tolerance model that judges them.

A float tensor passes when its max abs error is within

    allowed = rel_to_max x max|reference|  +  input-rounding allowance

and its cosine similarity is at least ``min_cosine`` (unless the whole error is within the
allowance). ``rel_to_max`` is MNN's check (1e-4 at fp32, 1% at fp16 by default). The allowance
is what an exact implementation of the op would still be off by, because its inputs were
rounded to the compute precision before it ran: for an op whose output error grows with its
inputs' magnitude rather than its output's (``x - y`` that cancels, ``sin`` of a large
argument), that error is ``|f'| x |x| x u`` with ``u`` the precision's unit roundoff (2^-11 for
fp16, 2^-24 for fp32). ``absolute`` ops have ``|f'| <= 1`` (allowance ``ulps x u x max|input|``),
``relative`` ops have ``f' = f`` (exp, pow: ``ulps x u x max|input| x max|output|``). The op
lists and ``ulps`` are configurable (``input_rounding`` in configs/default.yaml).

No tensor can be held closer than the spacing of the precision's numbers at its scale, so the
allowed error is never below two ulps of max|reference| in the compute precision (one for the
rounding of the op's inputs, one for its output's). In fp16 that
matters below the normal range (6.1e-5), where the spacing stops shrinking (2^-24): a layer scale
of 1e-6 (ConvNeXt) gives values fp16 holds with little or no precision. Such a tensor passes with
a precision warning (``underflow``): it is the format's limit, not an op's error.

fp16 saturates: a reference beyond the fp16 range (an attention mask's float32 lowest, say) that
the fp16 program holds as an infinity of the same sign is a match, not an error.
"""
from __future__ import annotations

from typing import Mapping, Optional

import numpy as np

PASS, FAIL = "pass", "fail"

UNIT_ROUNDOFF = {"fp16": 2.0 ** -11, "fp32": 2.0 ** -24}
FLOAT_TYPES = {"fp16": np.float16, "fp32": np.float32}
FP16_MAX = float(np.finfo(np.float16).max)


def ulp(value: float, precision: str) -> float:
    """The spacing of ``precision``'s numbers at ``value`` (subnormal spacing below the normal range)."""
    kind = FLOAT_TYPES[precision]
    return float(np.spacing(kind(min(abs(value), float(np.finfo(kind).max) / 2))))


def underflows(max_abs_ref: float, precision: str) -> bool:
    """The tensor's values all lie below the precision's normal range (reduced precision)."""
    return 0.0 < max_abs_ref < float(np.finfo(FLOAT_TYPES[precision]).tiny)


def input_rounding_allowance(op_type: str, precision: str, max_abs_input: float, max_abs_output: float,
                             model: Mapping) -> float:
    """Error an exact op would still show after its inputs were rounded to ``precision``."""
    if not max_abs_input:
        return 0.0
    scale = model["ulps"] * UNIT_ROUNDOFF[precision] * max_abs_input
    if op_type in model["absolute"]:
        return scale
    if op_type in model["relative"]:
        return scale * max_abs_output
    return 0.0


def compare(reference: np.ndarray, value: np.ndarray, tolerance: Mapping, *, allowance: float = 0.0,
            precision: str = "fp32") -> dict:
    """Metrics of ``value`` against ``reference``, and a status ("pass"/"fail") with the reason.

    Integer and bool tensors must match exactly. Shapes must be equal (no reshaping: a var in
    another layout is not the tensor). ``precision``: what the value was computed in — sets the
    ulp floor and, for fp16, saturation (a reference beyond 65504 held as an infinity of the
    same sign matches). Computed in float32, one pass over the data.
    """
    saturate = FP16_MAX if precision == "fp16" else None
    ref = np.asarray(reference)
    got = np.asarray(value)
    if ref.shape != got.shape:
        return {"status": FAIL, "reason": f"shape {got.shape} != reference {ref.shape}"}
    exact = ref.dtype.kind in "biu"
    r = ref.astype(np.float32, copy=False).reshape(-1)
    g = got.reshape(-1)  # fp16 stays fp16: the subtraction widens it chunk by chunk, no full copy
    reasons = []
    with np.errstate(invalid="ignore", over="ignore"):
        diff = np.subtract(r, g, dtype=np.float32)
        max_abs_err = max(float(diff.max()), -float(diff.min())) if diff.size else 0.0
        max_abs_ref = max(float(r.max()), -float(r.min())) if r.size else 0.0
    if not (np.isfinite(max_abs_err) and np.isfinite(max_abs_ref)):  # rare: infinities or NaNs
        r, diff, bad = _finite_part(r, g, saturate)
        if bad:
            reasons.append(f"{bad} non-finite values where the reference differs")
        max_abs_err = float(np.abs(diff).max()) if diff.size else 0.0
        max_abs_ref = float(np.abs(r).max()) if r.size else 0.0
    rel = max_abs_err / max_abs_ref if max_abs_ref > 0 else max_abs_err
    cosine, snr = _cosine_snr(r, diff, max_abs_ref + max_abs_err)
    # the inputs' rounding and the output's: two ulps of the tensor's scale
    allowance = max(allowance, 2.0 * ulp(max_abs_ref, precision))
    allowed = tolerance["rel_to_max"] * max_abs_ref + allowance
    metrics = {"max_abs_err": max_abs_err, "max_abs_ref": max_abs_ref, "rel_to_max": rel,
               "cosine": cosine, "snr_db": snr, "allowed_abs_err": None if exact else allowed}
    if exact:
        if max_abs_err != 0:
            reasons.append(f"{int(np.count_nonzero(diff))} of {diff.size} values differ (exact match required)")
    else:
        if max_abs_err > allowed:
            extra = f" + {allowance:.3g} input rounding" if allowance else ""
            reasons.append(f"max abs err {max_abs_err:.3g} > {tolerance['rel_to_max']:g} x max|ref| {max_abs_ref:.3g}"
                           f"{extra}")
        if cosine < tolerance["min_cosine"] and max_abs_err > allowance:
            reasons.append(f"cosine {cosine:.6g} < {tolerance['min_cosine']:g}")
    if not reasons and not exact and underflows(max_abs_ref, precision):
        reasons_ok = (f"precision: values below {precision}'s normal range (max|ref| {max_abs_ref:.3g}), "
                      f"held to {ulp(max_abs_ref, precision):.3g}")
        return {**metrics, "status": PASS, "reason": reasons_ok, "underflow": True}
    return {**metrics, "status": FAIL if reasons else PASS, "reason": "; ".join(reasons)}


def _finite_part(r: np.ndarray, g: np.ndarray, saturate) -> tuple[np.ndarray, np.ndarray, int]:
    """(reference, difference) where both are finite, and how many non-finite values differ: a
    NaN matches a NaN, an infinity the same infinity, and with ``saturate`` an fp16 infinity
    matches a reference of the same sign beyond the fp16 range."""
    g = g.astype(np.float32)
    finite_r, finite_g = np.isfinite(r), np.isfinite(g)
    both = finite_r & finite_g
    same = ~both & ((r == g) | (np.isnan(r) & np.isnan(g)))
    if saturate is not None:
        same |= ~finite_g & finite_r & (np.abs(r) > saturate) & (np.sign(r) == np.sign(g))
    return r[both], r[both] - g[both], int(np.count_nonzero(~both & ~same))


def _cosine_snr(r: np.ndarray, diff: np.ndarray, scale: float) -> tuple[float, Optional[float]]:
    """Cosine similarity and SNR (dB) of reference ``r`` and value ``r - diff``.

    float32 BLAS dot products on the reference and the error only (|g|^2 = |r|^2 - 2 r.d + |d|^2),
    scaled when squares would overflow (attention masks hold float32's lowest; ``scale`` >= max
    |value|); the cosine comes from the error norm, accurate when it is close to 1."""
    if scale > 1e15:
        r, diff = r / scale, diff / scale
    nr2, noise, cross = float(np.dot(r, r)), float(np.dot(diff, diff)), float(np.dot(r, diff))
    ng2 = max(nr2 - 2.0 * cross + noise, 0.0)
    nr, ng = np.sqrt(nr2), np.sqrt(ng2)
    if nr > 0 and ng > 0:
        cosine = float(np.clip(1.0 - (noise - (nr - ng) ** 2) / (2.0 * nr * ng), -1.0, 1.0))
    else:
        cosine = 1.0 if nr == ng else 0.0
    snr = None if noise == 0 else (float(10.0 * np.log10(nr2 / noise)) if nr > 0 else float("-inf"))
    return cosine, snr
