"""fp16 storage in the MIL interpreter: fp16 tensors are held as float32 arrays of fp16 values,
rounded by ``interpreter.fp16.round_fp16``. References: numpy's own float16 conversion
(``astype(np.float16)``, round to nearest even with subnormals, overflow to inf) for the rounding,
and numpy float16 arithmetic done op by op (each op computed in float32, its result stored as
float16) for whole programs.
"""
import numpy as np
import pytest
from coremltools.converters.mil import Builder as mb
from coremltools.converters.mil.mil import types

from onnx2mil.backend.interpreter import fp16, run_program
from onnx2mil.backend.interpreter.core import planned_forward, run_checked


def numpy_fp16(x: np.ndarray) -> np.ndarray:
    with np.errstate(all="ignore"):
        return x.astype(np.float16).astype(np.float32)


def assert_bits_equal(got: np.ndarray, ref: np.ndarray):
    assert got.dtype == ref.dtype and got.shape == ref.shape
    width = f"u{got.itemsize}"
    got, ref = got.reshape(-1), ref.reshape(-1)
    bad = np.nonzero(got.view(width) != ref.view(width))[0]
    assert bad.size == 0, [(hex(int(ref.view(width)[i])), got[i], ref[i]) for i in bad[:5]]


@pytest.fixture(params=["float32 path", "float32 path, integer sign", "astype path"])
def rounding(request, monkeypatch):
    """round_fp16 through its float32 operations at any size (the sign restored by copysign or by
    integer operations) or through its small-array path."""
    monkeypatch.setattr(fp16, "SMALL", 1 << 40 if request.param == "astype path" else 0)
    monkeypatch.setattr(fp16, "SIGN_BITS", 0 if request.param == "float32 path, integer sign" else 1 << 40)
    return lambda x: fp16.round_fp16(np.ascontiguousarray(x, dtype=np.float32))


def check(rounding, x):
    x = np.asarray(x, np.float32)
    with np.errstate(all="ignore"):
        assert_bits_equal(rounding(x), numpy_fp16(x))


def test_every_fp16_value_is_kept(rounding):
    values = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(np.float16).astype(np.float32)
    check(rounding, values)           # every fp16 bit pattern: subnormals, ±0, ±inf, NaNs


def test_ties_and_their_neighbours(rounding):
    h = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(np.float16)
    h = h[np.isfinite(h)]
    with np.errstate(over="ignore"):
        up = np.nextafter(h, np.float16(np.inf)).astype(np.float64)
    mids = ((h.astype(np.float64) + up) / 2).astype(np.float32)   # exact: fp16 value + half an ulp
    mids = mids[np.isfinite(mids)]
    assert mids.size > 60000
    bits = mids.view(np.int32)
    for delta in (-2, -1, 0, 1, 2):   # the tie itself and float32 neighbours either side
        check(rounding, (bits + delta).view(np.float32))


def test_subnormal_overflow_and_special_boundaries(rounding):
    edges = np.array([2.0 ** -14, 2.0 ** -15, 2.0 ** -24, 2.0 ** -25, 3 * 2.0 ** -26, 2.0 ** -25 + 2.0 ** -40,
                      2.0 ** -26, 1e-30, 1e-45, 65504, 65519.996, 65520, 65536, 1e38, 3.4e38,
                      np.inf, np.nan, 0.0, 1.0], np.float32)
    with np.errstate(over="ignore"):
        near = np.concatenate([edges, np.nextafter(edges, np.float32(np.inf)), np.nextafter(edges, np.float32(0))])
    check(rounding, np.concatenate([near, -near]))
    assert np.signbit(rounding(np.array([-1e-10, -0.0], np.float32))).all()   # -0.0 kept


def test_nan_payloads_as_numpy_converts_them(rounding):
    bits = np.array([0x7F800001, 0x7F801FFF, 0x7F802000, 0x7FC00000, 0x7FC00001, 0x7FFFF000, 0x7FFFFFFF,
                     0xFF800001, 0xFFC00000, 0xFFFFE001], np.uint32)
    check(rounding, np.tile(bits, 8).view(np.float32))


def test_random_bit_patterns_and_wide_exponents(rounding):
    rng = np.random.default_rng(12)
    check(rounding, rng.integers(0, 1 << 32, 1 << 21, dtype=np.uint64).astype(np.uint32).view(np.float32))
    x = rng.standard_normal(1 << 20) * np.exp2(rng.uniform(-32, 20, 1 << 20))
    check(rounding, x.astype(np.float32))
    check(rounding, x.astype(np.float32).reshape(1024, 1024)[:, ::3])   # strided input


def test_result_is_a_new_array(rounding):
    x = np.linspace(-3, 3, 4096, dtype=np.float32)
    before = x.copy()
    r = rounding(x)
    assert r is not x and not np.shares_memory(r, x)
    assert_bits_equal(x, before)
    for shape in [(), (1,), (3, 1, 2)]:
        x = np.full(shape, 1.1, np.float32)
        r = fp16.round_fp16(x)     # (the fixture's ascontiguousarray would make a 0-d array 1-d)
        assert type(r) is np.ndarray and r.shape == shape and r.dtype == np.float32
        assert_bits_equal(r.reshape(-1), numpy_fp16(x).reshape(-1))


# --- whole programs ---------------------------------------------------------------------------

N = 4096   # above fp16.SMALL: the float32 path of round_fp16


def _program():
    @mb.program(input_specs=[mb.TensorSpec(shape=(2, N), dtype=types.fp16)])
    def prog(x):
        a = mb.mul(x=x, y=np.float16(3.0), name="a")
        b = mb.add(x=a, y=x, name="b")
        c = mb.mul(x=b, y=np.float16(1e-3), name="c")           # into fp16 subnormals
        d = mb.transpose(x=c, perm=[1, 0], name="d")            # moves values: no rounding
        e = mb.exp(x=b, name="e")                               # overflows to inf
        f = mb.sub(x=mb.transpose(x=d, perm=[1, 0]), y=e, name="f")
        t = mb.reduce_sum(x=c, axes=[0, 1], name="t")            # rank 0
        return mb.relu(x=f, name="g"), mb.reduce_sum(x=c, axes=[1], name="s"), mb.mul(x=t, y=np.float16(3.0), name="u")

    return prog


def _reference(x16: np.ndarray) -> dict:
    """The program in numpy float16 storage: each op computed in float32, stored as float16."""
    def f16(v):
        with np.errstate(all="ignore"):
            return np.asarray(v, np.float32).astype(np.float16)

    w = lambda v: v.astype(np.float32)
    with np.errstate(all="ignore"):
        a = f16(w(x16) * np.float32(3.0))
        b = f16(w(a) + w(x16))
        c = f16(w(b) * np.float32(np.float16(1e-3)))
        e = f16(np.exp(w(b)))
        f = f16(w(c) - w(e))
        g = f16(np.maximum(w(f), 0))
        s = f16(np.sum(w(c), axis=1))
        t = f16(np.sum(w(c), axis=(0, 1)))
        u = f16(w(t) * np.float32(3.0))
    return {"a": a, "b": b, "c": c, "e": e, "f": f, "g": g, "s": s, "t": t, "u": u}


def _inputs():
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((2, N)) * np.exp2(rng.uniform(-20, 3, (2, N)))).astype(np.float16)
    x[0, :8] = [np.nan, np.inf, -np.inf, -0.0, 0.0, 6e-8, -6e-8, 20000]
    return x


def test_program_matches_numpy_fp16_storage_op_by_op():
    prog, x = _program(), _inputs()
    ref = _reference(x)
    assert np.isinf(ref["e"]).any() and (np.abs(ref["c"]) < 2 ** -14).any()   # the cases this test is about
    out = run_program(prog, {"x": x}, capture=True)
    for name, value in ref.items():
        assert out[name].dtype == np.float16
        assert_bits_equal(out[name], value)
    outputs = run_program(prog, {"x": x})
    planned = run_checked(prog, {"x": x})
    assert outputs["u"].shape == ()
    for name, value in outputs.items():
        assert value.dtype == np.float16
        assert_bits_equal(planned[name], value)
    forward, _ = planned_forward(prog)
    assert forward is not None


def test_observers_see_float16_and_replacements_are_rounded():
    prog, x = _program(), _inputs()
    seen = {}

    def observe_b(name, value):
        seen[name] = value.copy()
        return value.astype(np.float32) * np.float32(1.0001)   # not fp16 values: stored rounded

    out = run_program(prog, {"x": x}, capture=True, observe={"b": observe_b})
    assert seen["b"].dtype == np.float16
    assert_bits_equal(seen["b"], _reference(x)["b"])
    expected_b = (seen["b"].astype(np.float32) * np.float32(1.0001)).astype(np.float16)
    assert_bits_equal(out["b"], expected_b)
    with np.errstate(all="ignore"):
        expected_c = (expected_b.astype(np.float32) * np.float32(np.float16(1e-3))).astype(np.float16)
    assert_bits_equal(out["c"], expected_c)
