"""Same ONNX and options -> byte-identical .mlpackage, across processes with different hash seeds
(protobuf map order in model.mlmodel, Manifest.json identifiers derived from content)."""
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

BUILD = """
import sys
from pathlib import Path
import onnx2mil
from onnx2mil import models
out = Path(sys.argv[1])
for name, precision in (("transformer-tiny", "fp16"), ("bigvgan-tiny", "fp16"), ("resnet-tiny", "fp32")):
    onnx2mil.save(onnx2mil.build_coreml(models.build(name), compute_precision=precision),
                  out / f"{name}-{precision}.mlpackage")
"""


def files(folder: Path) -> dict:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_two_processes_with_different_hash_seeds_write_identical_packages(tmp_path):
    procs = []
    for seed in ("1", "2"):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        procs.append(subprocess.Popen([sys.executable, "-c", BUILD, str(tmp_path / seed)], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    for p in procs:
        _, err = p.communicate()
        assert p.returncode == 0, err
    first, second = files(tmp_path / "1"), files(tmp_path / "2")
    assert len(first) == 9  # three packages: Manifest.json, model.mlmodel, weight.bin each
    assert first == second


def test_manifest_identifiers_are_derived_from_content(tmp_path):
    import onnx2mil
    from onnx2mil import models

    model = models.build("resnet-tiny")
    a = onnx2mil.save(onnx2mil.build_coreml(model, compute_precision="fp32"), tmp_path / "a.mlpackage")
    b = onnx2mil.save(onnx2mil.build_coreml(model, compute_precision="fp16"), tmp_path / "b.mlpackage")
    ids = [set(json.loads((p / "Manifest.json").read_text())["itemInfoEntries"]) for p in (a, b)]
    assert not ids[0] & ids[1]  # other weights, other spec -> other identifiers
    onnx2mil.load_saved_program(a)  # coremltools reads the rewritten manifest
