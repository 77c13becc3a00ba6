"""fp16 rounding of constant conv weights that keeps each output's tap sum (its gain on a constant
signal), for fp16 builds.

Rounding every tap to its nearest fp16 value moves a filter's tap sum by up to half an ulp per
tap, in a direction fixed by the weights: a filter shared by many layers (BigVGAN's anti-aliasing
low-pass, 12 taps, in every activation: sum 1 - 2.3e-4 in fp16, per polyphase phase too) scales
the signal by the same factor at every depth, and the error adds up linearly instead of averaging
out. ``round_keeping_sums`` rounds to nearest, then moves the taps closest to halfway one ulp the
other way until each sum is as close as fp16 spacing allows: every tap stays within one ulp of its
fp32 value (as with any fp16 rounding of a value near a halfway point), zeros stay zero. The
values are returned as fp32 that fp16 holds exactly, so the fp16 pass casts them unchanged.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

FP16_MAX = float(np.finfo(np.float16).max)


def conv_sum_groups(shape: Sequence[int], *, transposed: bool, groups: int = 1,
                    strides: Sequence[int] = (), dilations: Sequence[int] = ()) -> np.ndarray:
    """For each tap of a conv weight of ``shape``, the index of the sum it belongs to: the output
    channel it feeds (conv: ``(C_out, C_in/groups, k...)``), and for a transposed conv
    (``(C_in, C_out/groups, k...)``) also the output phase of the tap — with stride ``s`` the
    outputs ``i*s + p`` each sum the taps ``t`` with ``t*dilation % s == p``."""
    shape = tuple(int(d) for d in shape)
    spatial = shape[2:]
    if not transposed:
        ids = np.arange(shape[0], dtype=np.int64).reshape((-1,) + (1,) * (len(shape) - 1))
        return np.broadcast_to(ids, shape)
    strides = list(strides) or [1] * len(spatial)
    dilations = list(dilations) or [1] * len(spatial)
    per_group = shape[0] // groups
    group_of_input = (np.arange(shape[0]) // per_group)[:, None]
    ids = group_of_input * shape[1] + np.arange(shape[1])[None, :]       # output channel
    ids = ids.reshape(shape[:2] + (1,) * len(spatial))
    for axis, (k, s, d) in enumerate(zip(spatial, strides, dilations)):
        phase = (np.arange(k) * d) % s
        ids = ids * s + phase.reshape((1, 1) + tuple(k if a == axis else 1 for a in range(len(spatial))))
    return np.broadcast_to(ids, shape)


def round_keeping_sums(weight: np.ndarray, sum_groups: np.ndarray) -> np.ndarray:
    """``weight`` rounded to fp16 values (returned as float32) so that the sum over each group of
    ``sum_groups`` (same shape, ints) comes as close to the exact sum of ``weight``'s taps as moving
    taps one fp16 step away from their nearest value can bring it; each tap moves at most once,
    zeros never. Greedy, one move per group per round: the move that leaves the smallest
    residual. A weight beyond fp16's range is returned unchanged (the fp16 pass saturates it, and
    the build warns)."""
    w = np.asarray(weight, dtype=np.float64).reshape(-1)
    if not w.size or not np.all(np.isfinite(w)) or np.abs(w).max() > FP16_MAX:
        return np.asarray(weight)
    _, groups = np.unique(np.asarray(sum_groups).reshape(-1), return_inverse=True)
    sizes = np.bincount(groups)
    starts = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    nearest = w.astype(np.float16)
    out = nearest.astype(np.float64)
    movable = w != 0
    for _ in range(int(sizes.max())):
        residual = np.bincount(groups, w - out, minlength=sizes.size)   # what each group's sum lacks
        towards = np.where(residual[groups] > 0, np.float16(np.inf), np.float16(-np.inf))
        step = np.nextafter(nearest, towards).astype(np.float64) - nearest.astype(np.float64)
        left = np.abs(residual[groups] - step)
        score = np.where(movable & np.isfinite(step) & (left < np.abs(residual[groups])), left, np.inf)
        order = np.lexsort((score, groups))
        best = order[starts]
        best = best[np.isfinite(score[best])]
        if not best.size:
            break
        out[best] += step[best]
        movable[best] = False
    return out.astype(np.float32).reshape(np.shape(weight))
