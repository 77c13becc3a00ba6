"""The ``onnx2mil`` command: each subcommand's output and exit code (0 ok, 1 divergence, 2 bad
input or usage)."""
import json
import subprocess
import sys

import numpy as np
import onnx
import pytest

import onnx2mil
from onnx2mil.cli import main
from harness import run_ort
from test_validation import small_net


@pytest.fixture
def onnx_files(tmp_path):
    good, bad = tmp_path / "net.onnx", tmp_path / "net_fault.onnx"
    onnx.save(small_net(), str(good))
    onnx.save(small_net({"b1": 0.3}), str(bad))
    return good, bad


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_ops_lists_registered_builders_with_opset_ranges(capsys):
    code, out, err = run_cli(capsys, "ops", "--json")
    assert code == 0 and err == ""
    ops = {(r["domain"], r["op_type"]): r for r in json.loads(out)}
    assert ops[("ai.onnx", "ConvTranspose")]["min_opset"] >= 1
    assert ops[("ai.onnx", "Conv")]["module"].endswith("op_builders.conv")
    code, out, _ = run_cli(capsys, "ops")
    assert code == 0 and "ConvTranspose" in out


def test_convert_writes_a_package_at_the_asked_precision(capsys, onnx_files, tmp_path):
    code, out, err = run_cli(capsys, "convert", onnx_files[0], "-o", tmp_path / "m.mlpackage",
                             "--precision", "fp32", "--target", "iOS16", "--json")
    assert code == 0 and err == ""
    data = json.loads(out)
    assert data["precision"] == "fp32" and (tmp_path / "m.mlpackage").is_dir()
    prog = onnx2mil.load_saved_program(tmp_path / "m.mlpackage")
    assert prog.functions["main"].opset_version.name == "iOS16"


def test_convert_with_a_config_preset(capsys, onnx_files, tmp_path):
    from pathlib import Path

    preset = Path(__file__).resolve().parents[1] / "configs" / "convtranspose1d-native.yaml"
    code, _, _ = run_cli(capsys, "convert", onnx_files[0], "-o", tmp_path / "n.mlpackage", "--config", preset)
    assert code == 0
    ops = onnx2mil.load_saved_program(tmp_path / "n.mlpackage").functions["main"].operations
    assert [op.x.rank for op in ops if op.op_type == "conv_transpose"] == [3]


def test_validate_exit_codes_and_json(capsys, onnx_files, tmp_path):
    good, bad = onnx_files
    code, out, err = run_cli(capsys, "validate", good, "--json")
    assert code == 0 and json.loads(out)["ok"] is True and err == ""
    assert run_cli(capsys, "convert", bad, "-o", tmp_path / "bad.mlpackage")[0] == 0
    code, out, _ = run_cli(capsys, "validate", good, "--mlmodel", tmp_path / "bad.mlpackage", "--json",
                           "--html", tmp_path / "r.html")
    assert code == 1
    report = json.loads(out)
    assert report["first_divergence"]["node"] == "up"
    assert "<svg" in (tmp_path / "r.html").read_text()


def test_validate_table_and_truncation_method(capsys, onnx_files, tmp_path):
    good, bad = onnx_files
    run_cli(capsys, "convert", bad, "-o", tmp_path / "bad.mlpackage")
    code, out, _ = run_cli(capsys, "validate", good, "--mlmodel", tmp_path / "bad.mlpackage")
    assert code == 1 and "first divergence at node 'up'" in out and "conv_out" in out
    x = np.random.default_rng(1).uniform(-1, 1, (1, 4, 24)).astype(np.float32)
    np.savez(tmp_path / "x.npz", x=x)
    code, out, _ = run_cli(capsys, "validate", good, "--inputs", tmp_path / "x.npz", "--method", "truncation",
                           "--json")
    assert code == 0 and json.loads(out)["method"] == "truncation"


def test_isolate_writes_the_bundle(capsys, onnx_files, tmp_path):
    code, out, _ = run_cli(capsys, "isolate", onnx_files[0], "--node", "up", "-o", tmp_path / "b", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["matrix"]["as_2d"] == {"mil-fp32": "pass", "mil-fp16": "pass"}
    assert (tmp_path / "b" / "README.md").is_file() and (tmp_path / "b" / "native.fp16.mlpackage").is_dir()


def test_run_matches_onnxruntime(capsys, onnx_files, tmp_path):
    run_cli(capsys, "convert", onnx_files[0], "-o", tmp_path / "m.mlpackage", "--precision", "fp32")
    x = np.random.default_rng(2).uniform(-1, 1, (1, 4, 24)).astype(np.float32)
    np.savez(tmp_path / "x.npz", x=x)
    code, out, _ = run_cli(capsys, "run", tmp_path / "m.mlpackage", "--inputs", tmp_path / "x.npz",
                           "-o", tmp_path / "y.npz", "--json")
    assert code == 0 and json.loads(out)["outputs"]["y"]["shape"] == [1, 2, 48]
    with np.load(tmp_path / "y.npz") as got:
        np.testing.assert_allclose(got["y"], run_ort(small_net(), {"x": x})["y"], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("argv,message", [
    (["validate", "missing.onnx"], "no such ONNX file"),
    (["validate", "no-such-model"], "neither an .onnx file nor a bundled model"),
    (["run", "missing.mlpackage", "--inputs", "x.npz", "-o", "y.npz"], "no such .mlpackage"),
])
def test_bad_input_exits_2_with_a_message(capsys, tmp_path, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(capsys, *argv)
    assert code == 2 and message in err and out == ""


def test_typed_errors_exit_2(capsys, onnx_files, tmp_path):
    code, _, err = run_cli(capsys, "isolate", onnx_files[0], "--node", "nope", "-o", tmp_path / "b")
    assert code == 2 and "no node named 'nope'" in err
    if sys.platform != "darwin":
        code, _, err = run_cli(capsys, "validate", onnx_files[0], "--runtime", "coreml")
        assert code == 2 and "macOS" in err


def test_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as e:
        main(["convert"])
    assert e.value.code == 2


def test_console_script_prints_only_data_on_stdout():
    proc = subprocess.run([sys.executable, "-m", "onnx2mil.cli", "ops", "--json"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "ai.onnx" in {row["domain"] for row in json.loads(proc.stdout)}
    usage = subprocess.run([sys.executable, "-m", "onnx2mil.cli", "frobnicate"], capture_output=True, text=True,
                           timeout=120)
    assert usage.returncode == 2 and "invalid choice" in usage.stderr and usage.stdout == ""


def test_validate_without_model_uses_the_bundled_default(capsys):
    from onnx2mil import models

    code, out, err = run_cli(capsys, "validate", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["ok"] is True and data["model"] == models.build(models.DEFAULT).graph.name
    assert data["counts"]["pass"] >= 100
