"""coremltools' torch path against onnx2mil on the small vocoder (issue 12): ``python benchmarks/torch_path.py``.

The small vocoder is Qwen2.5-Omni's token2wav BigVGAN as transformers builds it, full depth, 64
channels, seeded random weights (tests/real_exports/export.py ``build_bigvgan(True)``), input mel
(1, 80, 16). Each step runs in its own process (measure.py), one at a time, at fp16 and fp32:
- coremltools' torch path, under ``--torch-python`` (a venv with torch, made on first use):
  ``torch.jit.trace`` + ``ct.convert(traced, convert_to="mlprogram", compute_precision=...)`` + save;
- onnx2mil ``build_coreml`` + ``save`` of the committed dynamo export of the same model,
  tests/real_exports/qwen25omni_bigvgan_fulldepth_dynamo.onnx.
Times are inside the process (imports and building the torch module excluded; the process walls are
printed too); peak RSS is each process's VmHWM. Then every package is run by onnx2mil.predict (the MIL
interpreter) on the example input against torch's own forward. Prints markdown tables.
"""
from __future__ import annotations

import argparse
import datetime
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

from run import DEFAULT_WORKDIR, Runner

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SMALL = REPO / "tests" / "real_exports" / "qwen25omni_bigvgan_fulldepth_dynamo.onnx"
TORCH_VENV = Path("/tmp/venv-export")
PRECISIONS = ("fp16", "fp32")


def ensure_torch_venv(python: Path) -> None:
    """The default venv is made on first use: ``python -m venv`` + ``pip install -e REPO[export]``
    (the export extra pins torch's CPU wheel)."""
    if python.exists():
        return
    if python != TORCH_VENV / "bin" / "python":
        raise SystemExit(f"--torch-python {python} does not exist")
    print(f"[bench] making {TORCH_VENV} (torch CPU wheel, transformers) ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(TORCH_VENV)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", "-e", f"{REPO}[export]"], check=True)


def median_of(runs: list, keys: tuple):
    """Median over runs of the sum of ``keys``; None if any run failed."""
    if any(m.error for m in runs):
        return None
    return statistics.median(sum(m.result[k] for k in keys) for m in runs)


def cell(x, fmt="{:.2f}") -> str:
    return "—" if x is None else fmt.format(x)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--torch-python", type=Path, default=TORCH_VENV / "bin" / "python",
                    help="an interpreter with torch, transformers and coremltools (default made on first use)")
    ap.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR / "torch_path")
    ap.add_argument("--repeats", type=int, default=1, help="runs of each conversion; the table shows medians")
    ap.add_argument("--timeout", type=float, default=1800.0, help="seconds per measured process")
    args = ap.parse_args()
    ensure_torch_venv(args.torch_python)
    args.workdir.mkdir(parents=True, exist_ok=True)
    runner = Runner(args.workdir, args.timeout)
    started = datetime.datetime.now(datetime.timezone.utc)
    load_start = os.getloadavg()

    reference = args.workdir / "small_vocoder.reference.npz"
    ref = runner.measure("torch-forward", "torch_forward", {"reference": str(reference), "onnx": str(SMALL)},
                         python=str(args.torch_python))
    if ref.error:
        raise SystemExit(f"torch forward failed: {ref.error}")

    runs = {}
    packages = {}
    for precision in PRECISIONS:
        for tool, task, python, onnx in (("torch", "torch_convert", str(args.torch_python), None),
                                         ("onnx2mil", "convert", sys.executable, str(SMALL))):
            out = args.workdir / f"small_vocoder.{tool}.{precision}.mlpackage"
            measured = []
            for i in range(args.repeats):
                shutil.rmtree(out, ignore_errors=True)
                task_args = {"out": str(out), "precision": precision, **({"onnx": onnx} if onnx else {})}
                measured.append(runner.measure(f"{tool}-{precision}-{i}", task, task_args, python=python))
            runs[tool, precision] = measured
            if not measured[-1].error:
                packages[f"{tool} {precision}"] = str(out)
    check = runner.measure("agreement", "agreement", {"reference": str(reference), "packages": packages})
    load_end = os.getloadavg()

    torch_versions = next((m.result["versions"] for m in runs["torch", PRECISIONS[0]] if not m.error), {})
    print(f"\nRun {started:%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, load average (1/5/15 min) "
          f"{load_start[0]:.1f} / {load_start[1]:.1f} / {load_start[2]:.1f} at the start, "
          f"{load_end[0]:.1f} / {load_end[1]:.1f} / {load_end[2]:.1f} at the end; "
          f"{args.repeats} run(s) per cell, medians. torch path: "
          + ", ".join(f"{k} {v}" for k, v in torch_versions.items()) + ".\n")
    print("| model | precision | torch path: trace (s) | torch path: ct.convert + save (s) | torch path total (s) "
          "| torch path peak RSS (MB) | onnx2mil build_coreml + save (s) | onnx2mil peak RSS (MB) "
          "| torch path / onnx2mil |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for precision in PRECISIONS:
        theirs, ours = runs["torch", precision], runs["onnx2mil", precision]
        trace = median_of(theirs, ("trace_s",))
        convert = median_of(theirs, ("convert_s", "save_s"))
        total = median_of(theirs, ("trace_s", "convert_s", "save_s"))
        mine = median_of(ours, ("build_s", "save_s"))
        rss_theirs = None if any(m.error for m in theirs) else max(m.peak_rss_mb for m in theirs)
        rss_ours = None if any(m.error for m in ours) else max(m.peak_rss_mb for m in ours)
        print(f"| small vocoder | {precision} | {cell(trace)} | {cell(convert)} | {cell(total)} "
              f"| {cell(rss_theirs, '{:,.0f}')} | {cell(mine)} | {cell(rss_ours, '{:,.0f}')} "
              f"| {cell(total / mine if total and mine else None, '{:.1f}×')} |")
    failed = [m for ms in runs.values() for m in ms if m.error]
    for m in failed:
        print(f"\n{m.label} failed: {m.error.splitlines()[0][:300]}")

    print("\nWhole processes (imports, building the torch module, writing the result included), medians:\n")
    print("| precision | torch path process (s) | of which import torch + coremltools + transformers (s) "
          "| building the torch module (s) | onnx2mil process (s) | of which import onnx2mil (s) |")
    print("|---|---:|---:|---:|---:|---:|")
    for precision in PRECISIONS:
        theirs, ours = runs["torch", precision], runs["onnx2mil", precision]
        wall = lambda ms: None if any(m.error for m in ms) else statistics.median(m.wall_s for m in ms)  # noqa: E731
        print(f"| {precision} | {cell(wall(theirs))} | {cell(median_of(theirs, ('import_s',)))} "
              f"| {cell(median_of(theirs, ('model_s',)))} | {cell(wall(ours))} | {cell(median_of(ours, ('import_s',)))} |")

    print(f"\nAgreement on the example input (max |x| of torch's waveform {ref.result['expected_peak']:.3f}; "
          f"onnxruntime on the committed export vs torch: {ref.result['onnxruntime_max_abs_err']:.2e}), "
          "each package run by onnx2mil.predict:\n")
    if check.error:
        print(f"agreement check failed: {check.error.splitlines()[0][:300]}")
        return 1
    print("| package | max abs error vs torch forward |")
    print("|---|---:|")
    for label, err in check.result["max_abs_err"].items():
        tool, precision = label.split()
        name = "coremltools torch path" if tool == "torch" else "onnx2mil"
        print(f"| {name}, {precision} | {err:.2e} |")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
