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
