"""fp16 storage emulated in float32 arrays: the value of an fp16 tensor var is held as a float32
array whose elements are all fp16 values (exactly what ``astype(np.float16)`` would store, widened
back), so kernels read it without a conversion and only their results need rounding.

:func:`round_fp16` is ``x.astype(np.float16).astype(np.float32)`` for a float32 array, bit for bit
(round to nearest even, fp16 subnormals, overflow to ±inf from 65520 on, NaN stays NaN with
numpy's payload, -0.0 kept), without numpy's scalar float16 conversion (no F16C use), in a few
float32 operations: for x whose exponent is e (at least -14, fp16's smallest normal exponent, which
also covers its subnormals), the constant c = 1.5 * 2**(e + 13) puts x + c in the binade where a
float32 ulp is x's fp16 spacing, 2**(e - 10), and c is an even number of those ulps: the float32
sum rounds x to fp16 precision, ties to even, and (x + c) - c is exact (Sterbenz); x's sign bit
is put back (a zero result's sign). c's bits come from x's exponent bits by integer operations. Arrays
holding |x| >= 32768 (or inf, NaN) convert those elements with numpy's own conversion (overflow to
inf, NaN payloads); arrays under ``SMALL`` elements take numpy's conversion to float16 (fewer calls),
widened back through a table of the float32 value of every fp16 bit pattern.
"""
from __future__ import annotations

import numpy as np

F32, F16, I32, U16 = np.dtype(np.float32), np.dtype(np.float16), np.dtype(np.int32), np.dtype(np.uint16)
SMALL = 1536                # below this size numpy's conversion and a table lookup cost less than the float32 path
_EXPONENT = np.int32(0x7F800000)
_MIN_NORMAL = np.int32(0x38800000)           # 2**-14: fp16's smallest normal, its subnormals' exponent
_C_OFFSET = np.int32((13 << 23) + 0x400000)  # 2**e -> 1.5 * 2**(e + 13)
_LARGE = 0x47000000                          # 2**15: from here on (inf, NaN too) the fp16 range may end
_LIMIT = np.float32(65520.0)                 # the smallest magnitude fp16 rounds to inf
_SIGN = np.int32(-0x80000000)
_WIDEN = np.arange(1 << 16, dtype=np.uint32).astype(U16).view(F16).astype(F32)  # fp16 bits -> float32 value
# (a table lookup widens faster than numpy's float16 -> float32 conversion, with the same bits)
SIGN_BITS = 8192            # from this size the sign is restored by integer operations (two calls, faster per element)

_bitwise_and, _bitwise_or, _maximum, _add, _subtract, _copysign = \
    np.bitwise_and, np.bitwise_or, np.maximum, np.add, np.subtract, np.copysign
_max, _abs, _less = np.maximum.reduce, np.abs, np.less


def round_fp16(x: np.ndarray) -> np.ndarray:
    """A new float32 array: the float32 array ``x`` rounded to fp16 values, as
    ``x.astype(np.float16).astype(np.float32)`` (bit-identical, NaN payloads included)."""
    if not x.ndim:                              # (ufuncs and take would return numpy scalars)
        return x.astype(F16).astype(F32)
    if x.size < SMALL:
        return _WIDEN.take(x.astype(F16).view(U16))
    b = x.view(I32)
    c = _bitwise_and(b, _EXPONENT)              # 2**e as float32 bits (0 for zeros and float32 subnormals)
    large = _max(c, axis=None) >= _LARGE
    _maximum(c, _MIN_NORMAL, out=c)
    _add(c, _C_OFFSET, out=c)                   # (garbage for |x| >= 2**115, inf, NaN: replaced below)
    cf = c.view(F32)
    r = _add(x, cf)
    _subtract(r, cf, out=r)
    if x.size < SIGN_BITS:
        _copysign(r, x, out=r)
    else:                                       # copysign is not vectorised: x's sign bit or-ed in
        _bitwise_and(b, _SIGN, out=c)
        ri = r.view(I32)
        _bitwise_or(ri, c, out=ri)
    if large:
        huge = ~_less(_abs(x), _LIMIT)          # |x| >= 65520, inf, NaN
        r[huge] = x[huge].astype(F16).astype(F32)
    return r

