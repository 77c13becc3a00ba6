"""ONNX's conformance cases with every input dim flexible (``RangeDim(d, d + 8)``, as an export
with dynamic axes declares them), for the ops whose builders handle symbolic dims specially.

Baseline: docs/conformance_symbolic.json, written by ``python -m onnx2mil.conformance --symbolic``.
No case may crash or compute wrong values; a case that passed there must still pass.
"""
import json
import warnings
from pathlib import Path

import pytest

from onnx2mil import conformance

BASELINE = Path(__file__).resolve().parents[1] / "docs" / "conformance_symbolic.json"
_baseline = {c["name"]: c["status"] for c in json.loads(BASELINE.read_text())["cases"]}
# builders whose symbolic-dim paths differ from their static ones (bounds, runtime shapes, loops)
OPS = {"ConvTranspose", "Conv", "Pad", "Resize", "Upsample", "Squeeze", "Unsqueeze", "Slice", "Reshape",
       "Flatten", "Expand", "Tile", "Range", "Shape", "Size", "ConstantOfShape", "LSTM", "GRU", "RNN",
       "Split", "TopK", "ScatterElements", "Scatter", "ReduceMax", "ReduceMin"}

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    CASES = [(c, op) for c, op in conformance._collect(None) if op[1] in OPS and _baseline.get(c.name) != "not_applicable"]


@pytest.mark.parametrize("case,op", CASES, ids=[c.name for c, _ in CASES])
def test_symbolic_conformance_case(case, op):
    result = conformance.run_case(case, op, symbolic=True)
    assert result.status not in ("crash", "wrong"), result.detail
    if _baseline.get(case.name) == "pass":
        assert result.status == "pass", result.detail
