"""ONNX's conformance suite (node cases) through build_coreml + the MIL interpreter.

Baseline: docs/conformance.json, written by `python -m onnx2mil.conformance`. A case that passed
there must still pass; no case may crash (every failure must be a typed refusal or a value
mismatch that the coverage table lists).
"""
import json
import warnings
from pathlib import Path

import pytest

from onnx2mil import conformance

BASELINE = Path(__file__).resolve().parents[1] / "docs" / "conformance.json"
_baseline = {c["name"]: c["status"] for c in json.loads(BASELINE.read_text())["cases"]}

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    CASES = conformance._collect(None)


@pytest.mark.parametrize("case,op", CASES, ids=[c.name for c, _ in CASES])
def test_conformance_case(case, op):
    result = conformance.run_case(case, op)
    assert result.status != "crash", result.detail
    if _baseline.get(case.name) == "pass":
        assert result.status == "pass", result.detail


# ---- onnx's pytorch-converted models (torch modules exported at old opsets) ------------------------

PT_BASELINE = Path(__file__).resolve().parents[1] / "docs" / "conformance_pytorch_converted.json"
_pt_baseline = {c["name"]: c["status"] for c in json.loads(PT_BASELINE.read_text())["cases"]}
PT_CASES = [pytest.param(case, op, id=case.name) for case, op in conformance._collect_pytorch_converted(None)]


@pytest.mark.parametrize("case,op", PT_CASES)
def test_pytorch_converted_case(case, op):
    result = conformance.run_case(case, op)
    assert result.status != "crash", result.detail
    if _pt_baseline.get(case.name) == "pass":
        assert result.status == "pass", result.detail
