"""Every builder on single-node graphs across its attribute space: ONNX node -> build_coreml ->
saved .mlpackage -> MIL interpreter, compared with onnxruntime (fp32 tight, fp16 documented)."""
import numpy as np
import pytest

import onnx2mil
from harness import run_ort
from op_cases import all_cases, all_refused, unordered_ids

CASES = all_cases()
REFUSED = all_refused()
UNORDERED = unordered_ids()
FP32_RTOL, FP32_ATOL = 1e-5, 1e-5
FP16_EPS = 2.0 ** -10  # float16 spacing at 1: ONNX float16 tensors are compared at their precision


def compare(case, got, expected, rtol, atol):
    for name, ref in expected.items():
        out = np.asarray(got[name])
        if case.id in UNORDERED:  # ONNX leaves the order unspecified (e.g. TopK sorted=0)
            out, ref = np.sort(out, axis=-1), np.sort(ref, axis=-1)
        assert out.shape == ref.shape, f"{name}: shape {out.shape} != {ref.shape}"
        if ref.dtype == bool:
            np.testing.assert_array_equal(out.astype(bool), ref, err_msg=name)
        else:
            tol = max(rtol, FP16_EPS) if ref.dtype == np.float16 else rtol  # fp16 tensors: fp16 precision
            np.testing.assert_allclose(out.astype(np.float64), ref.astype(np.float64), rtol=tol,
                                       atol=max(atol, FP16_EPS) if ref.dtype == np.float16 else atol,
                                       err_msg=f"{case.id}: {name}")


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_builder_matches_onnxruntime_fp32(case, tmp_path):
    model = case.model()
    expected = run_ort(model, case.inputs)
    mlmodel = onnx2mil.build_coreml(model, compute_precision="fp32", config=case.config,
                                    minimum_deployment_target=case.target)
    saved = onnx2mil.save(mlmodel, tmp_path / "m.mlpackage")
    compare(case, onnx2mil.predict(saved, case.inputs), expected, FP32_RTOL, FP32_ATOL)


@pytest.mark.parametrize("case,reason", REFUSED, ids=[c.id for c, _ in REFUSED])
def test_builder_refuses_with_a_reason(case, reason):
    with pytest.raises(onnx2mil.UnsupportedOperatorError) as err:
        onnx2mil.build_coreml(case.model(), compute_precision="fp32", config=case.config,
                              minimum_deployment_target=case.target)
    assert [r.op_type for r in err.value.refusals] == [case.op_type]
    assert reason in err.value.refusals[0].reason


# fp16 builds: kernels round every fp16 var, as fp16 storage does. Tolerance (documented in the
# README): max abs error <= 1% of max |reference| (MNN's check) + 1e-3 absolute.
FP16_REL_TO_MAX, FP16_ATOL = 1e-2, 1e-3
FP16_CASES = [c for c in CASES if c.fp16 and all(v.dtype == np.float32 for v in c.inputs.values())]


@pytest.mark.parametrize("case", FP16_CASES, ids=[c.id for c in FP16_CASES])
def test_builder_matches_onnxruntime_fp16(case):
    model = case.model()
    expected = run_ort(model, case.inputs)
    mlmodel = onnx2mil.build_coreml(model, compute_precision="fp16", config=case.config,
                                    minimum_deployment_target=case.target)
    got = onnx2mil.predict(mlmodel, case.inputs)
    for name, ref in expected.items():
        if ref.dtype.kind != "f":
            continue
        out = np.asarray(got[name], dtype=np.float64)
        assert out.shape == ref.shape
        if case.id in UNORDERED:
            out, ref = np.sort(out, axis=-1), np.sort(ref, axis=-1)
        finite = np.isfinite(ref)
        np.testing.assert_array_equal(out[~finite], ref[~finite], err_msg=f"{case.id}: {name} non-finite")
        bound = FP16_REL_TO_MAX * np.max(np.abs(ref[finite]), initial=0) + FP16_ATOL
        assert np.max(np.abs(out[finite] - ref[finite]), initial=0) <= bound, f"{case.id}: {name}"
