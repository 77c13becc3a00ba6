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
from typing import Optional

from run import DEFAULT_WORKDIR, Runner, cell

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


def measure(runner: Runner, torch_python: Path, repeats: int = 1, ours: Optional[dict] = None) -> dict:
    """The torch path ``repeats`` times per precision, and onnx2mil's build + save of the committed
    export unless ``ours`` gives them ({precision: ([Measurement...], package path)}); then every
    package against torch's forward. Returns what ``render`` prints."""
    workdir = runner.workdir
    out = {"load_start": os.getloadavg(), "repeats": repeats, "runs": {}, "reference": None, "agreement": None}
    reference = workdir / "small_vocoder.reference.npz"
    out["reference"] = ref = runner.measure("torch-forward", "torch_forward",
                                            {"reference": str(reference), "onnx": str(SMALL)}, python=str(torch_python))
    if ref.error:
        return out
    packages = {}
    for precision in PRECISIONS:
        tools = [("torch", "torch_convert", str(torch_python), None)]
        if ours and precision in ours:
            measurements, package = ours[precision]
            out["runs"]["onnx2mil", precision] = measurements
            if not any(m.error for m in measurements):
                packages[f"onnx2mil {precision}"] = str(package)
        else:
            tools.append(("onnx2mil", "convert", sys.executable, str(SMALL)))
        for tool, task, python, onnx in tools:
            package = workdir / f"small_vocoder.{tool}.{precision}.mlpackage"
            measured = []
            for i in range(repeats):
                shutil.rmtree(package, ignore_errors=True)
                task_args = {"out": str(package), "precision": precision, **({"onnx": onnx} if onnx else {})}
                measured.append(runner.measure(f"{tool}-{precision}-{i}", task, task_args, python=python))
            out["runs"][tool, precision] = measured
            if not measured[-1].error:
                packages[f"{tool} {precision}"] = str(package)
    out["agreement"] = runner.measure("agreement", "agreement", {"reference": str(reference), "packages": packages})
    out["load_end"] = os.getloadavg()
    return out


def ratio(measured: dict, precision: str) -> Optional[float]:
    """torch path total / onnx2mil build + save (medians), or None."""
    runs = measured["runs"]
    if ("torch", precision) not in runs or ("onnx2mil", precision) not in runs:
        return None
    total = median_of(runs["torch", precision], ("trace_s", "convert_s", "save_s"))
    mine = median_of(runs["onnx2mil", precision], ("build_s", "save_s"))
    return total / mine if total and mine else None


def render(measured: dict) -> list[str]:
    ref, runs = measured["reference"], measured["runs"]
    if ref.error:
        return [f"torch forward failed: {ref.error.splitlines()[0][:300]}"]
    torch_versions = next((m.result["versions"] for m in runs.get(("torch", PRECISIONS[0]), []) if not m.error), {})
    lines = [f"{measured['repeats']} run(s) per cell, medians. torch path: "
             + ", ".join(f"{k} {v}" for k, v in torch_versions.items()) + ".", "",
             "| model | precision | torch path: trace (s) | torch path: ct.convert + save (s) | torch path total (s) "
             "| torch path peak RSS (MB) | onnx2mil build_coreml + save (s) | onnx2mil peak RSS (MB) "
             "| torch path / onnx2mil |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for precision in PRECISIONS:
        theirs, ours = runs["torch", precision], runs["onnx2mil", precision]
        trace = median_of(theirs, ("trace_s",))
        convert = median_of(theirs, ("convert_s", "save_s"))
        total = median_of(theirs, ("trace_s", "convert_s", "save_s"))
        mine = median_of(ours, ("build_s", "save_s"))
        rss_theirs = None if any(m.error for m in theirs) else max(m.peak_rss_mb for m in theirs)
        rss_ours = None if any(m.error for m in ours) else max(m.peak_rss_mb for m in ours)
        lines.append(f"| small vocoder | {precision} | {cell(trace)} | {cell(convert)} | {cell(total)} "
                     f"| {cell(rss_theirs, '{:,.0f}')} | {cell(mine)} | {cell(rss_ours, '{:,.0f}')} "
                     f"| {cell(ratio(measured, precision), '{:.1f}×')} |")
    lines += [f"\n{m.label} failed: {m.error.splitlines()[0][:300]}" for ms in runs.values() for m in ms if m.error]

    lines += ["", "Whole processes (imports, building the torch module, writing the result included), medians:", "",
              "| precision | torch path process (s) | of which import torch + coremltools + transformers (s) "
              "| building the torch module (s) |", "|---|---:|---:|---:|"]
    for precision in PRECISIONS:
        theirs = runs["torch", precision]
        wall = None if any(m.error for m in theirs) else statistics.median(m.wall_s for m in theirs)
        lines.append(f"| {precision} | {cell(wall)} | {cell(median_of(theirs, ('import_s',)))} "
                     f"| {cell(median_of(theirs, ('model_s',)))} |")

    check = measured["agreement"]
    lines += ["", f"Agreement on the example input (max |x| of torch's waveform {ref.result['expected_peak']:.3f}; "
              f"onnxruntime on the committed export vs torch: {ref.result['onnxruntime_max_abs_err']:.2e}), "
              "each package run by onnx2mil.predict:", ""]
    if check.error:
        return lines + [f"agreement check failed: {check.error.splitlines()[0][:300]}"]
    lines += ["| package | max abs error vs torch forward |", "|---|---:|"]
    for label, err in check.result["max_abs_err"].items():
        tool, precision = label.split()
        name = "coremltools torch path" if tool == "torch" else "onnx2mil"
        lines.append(f"| {name}, {precision} | {err:.2e} |")
    return lines


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
    started = datetime.datetime.now(datetime.timezone.utc)
    measured = measure(Runner(args.workdir, args.timeout), args.torch_python, args.repeats)
    start, end = measured["load_start"], measured.get("load_end", os.getloadavg())
    print(f"\nRun {started:%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, load average (1/5/15 min) "
          f"{start[0]:.1f} / {start[1]:.1f} / {start[2]:.1f} at the start, "
          f"{end[0]:.1f} / {end[1]:.1f} / {end[2]:.1f} at the end.\n")
    print("\n".join(render(measured)))
    failed = [m for ms in measured["runs"].values() for m in ms if m.error]
    return 1 if failed or measured["reference"].error or measured["agreement"].error else 0


if __name__ == "__main__":
    sys.exit(main())
