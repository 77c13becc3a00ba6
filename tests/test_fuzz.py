"""Mutated ONNX files (seeded): every failure is typed, and nothing the full checker and onnxruntime
both reject is built, in a process limited to 8 GiB of address space (importing needs ~6)."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).with_name("fuzz_models.py")


def fuzz(tmp_path, seed: int, count: int) -> dict:
    proc = subprocess.run([sys.executable, str(SCRIPT), str(seed), str(count), "8"], cwd=tmp_path,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.splitlines()[-1])


def check(result: dict, count: int) -> None:
    assert sum(result["outcomes"].values()) == count
    assert result["untyped"] == []
    assert result["built_but_rejected"] == []
    assert result["outcomes"].get("built", 0) > 0 and result["outcomes"].get("InvalidModelError", 0) > 0
    print(result["outcomes"])


def test_400_mutants_fail_typed(tmp_path):
    check(fuzz(tmp_path, seed=0, count=400), 400)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_2000_more_mutants_fail_typed(tmp_path, seed):
    check(fuzz(tmp_path, seed=seed, count=400), 400)
