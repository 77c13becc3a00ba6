"""Build + save speed side by side, one run (issue 12): ``python benchmarks/build_speed.py``.

For the 115M-parameter BigVGAN of models/ (written as ONNX with external data, as users have it)
and the small vocoder (Qwen2.5-Omni's BigVGAN as transformers' dynamo export, full depth, small
channels: tests/real_exports), at fp16 and fp32, and synthetic chains of 1k and 10k nodes (linear
scaling), each step in its own process (measure.py): the
weight-I/O floor, onnx2mil ``build_coreml`` + ``save``, and onnx2coreml (PyPI, its own venv under
/tmp; Constant nodes rewritten as initializers, which it needs). Prints a markdown table; times
are whole-step seconds inside the process (imports excluded), peak RSS is the process's VmHWM.
"""
from __future__ import annotations

import argparse
import datetime
import os
import shutil
import sys
from pathlib import Path

from run import DEFAULT_WORKDIR, ONNX2COREML_VENV, Runner, ensure_venv

HERE = Path(__file__).resolve().parent
SMALL = HERE.parent / "tests" / "real_exports" / "qwen25omni_bigvgan_fulldepth_dynamo.onnx"
BIG = "bigvgan-qwen2.5-omni"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR / "build_speed")
    ap.add_argument("--no-onnx2coreml", action="store_true")
    ap.add_argument("--models", nargs="*", default=["big", "small", "chains"],
                    help="big, small, chains (1k and 10k Add/Mul/Relu nodes: linear scaling)")
    args = ap.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    runner = Runner(args.workdir, 1800.0)
    o2c = None if args.no_onnx2coreml else ensure_venv(ONNX2COREML_VENV, "onnx2coreml")[0]
    paths = {}
    if "big" in args.models:
        from onnx2mil import models
        big = args.workdir / f"{BIG}.onnx"
        if not big.exists():
            models.save(BIG, big)
        paths["big vocoder (115M)"] = big
    if "small" in args.models:
        paths["small vocoder"] = SMALL
    def both(tag, onnx_path, precision):
        """(onnx2mil, onnx2coreml or None) build + save of ``onnx_path``."""
        ours = runner.measure(f"onnx2mil-{tag}", "convert", {"onnx": str(onnx_path), "precision": precision,
                                                             "out": str(args.workdir / f"{tag}.mlpackage")})
        if not o2c:
            return ours, None
        out = args.workdir / f"{tag}.onnx2coreml.mlpackage"
        shutil.rmtree(out, ignore_errors=True)
        return ours, runner.measure(f"onnx2coreml-{tag}", "onnx2coreml",
                                    {"onnx": str(onnx_path), "precision": precision, "out": str(out),
                                     "constants_as_initializers": True}, python=o2c)

    started = datetime.datetime.now(datetime.timezone.utc)
    rows = []
    for label, onnx_path in paths.items():
        for precision in ("fp16", "fp32"):
            tag = f"{onnx_path.stem}-{precision}"
            floor = runner.measure(f"floor-{tag}", "io_floor", {"onnx": str(onnx_path), "precision": precision,
                                                                 "out": str(args.workdir / f"{tag}.weights")})
            rows.append((label, precision, floor, *both(tag, onnx_path, precision)))

    def seconds(m, keys):
        if m is None or m.error:
            return None
        return sum(m.result.get(k) or 0.0 for k in keys)

    chains = []
    if "chains" in args.models:
        for n in (1000, 10000):
            path = args.workdir / f"chain{n}.onnx"
            runner.measure(f"chain{n}-generate", "synthetic_chain", {"nodes": n, "out": str(path)})
            chains.append((n, *both(f"chain{n}", path, "fp16")))

    load = os.getloadavg()
    print(f"\nRun {started:%Y-%m-%d %H:%M} UTC, load average at the end {load[0]:.1f} / {load[1]:.1f}.\n")
    print("| model | precision | I/O floor (s) | onnx2mil build + save (s) | × floor | onnx2mil peak RSS (MB) "
          "| onnx2coreml build + save (s) | onnx2coreml / onnx2mil | onnx2coreml peak RSS (MB) |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for label, precision, floor, ours, theirs in rows:
        f = seconds(floor, ("read_s", "write_s", "fsync_s"))
        o = seconds(ours, ("build_s", "save_s"))
        t = seconds(theirs, ("build_s", "save_s"))
        cell = lambda x, fmt="{:.2f}": "—" if x is None else fmt.format(x)  # noqa: E731
        print(f"| {label} | {precision} | {cell(f)} | {cell(o)} | {cell(o / f if o and f else None, '{:.1f}×')} "
              f"| {cell(ours.peak_rss_mb, '{:,.0f}')} | {cell(t)} "
              f"| {cell(t / o if t and o else None, '{:.1f}×')} "
              f"| {cell(theirs.peak_rss_mb if theirs and not theirs.error else None, '{:,.0f}')} |")
    if chains:
        print("\nLinear scaling: chains of Add/Mul/Relu nodes on (1, 16) tensors, fp16, build + save:\n")
        print("| ONNX nodes | onnx2mil (s) | per node (ms) | onnx2mil peak RSS (MB) | onnx2coreml (s) | per node (ms) |")
        print("|---:|---:|---:|---:|---:|---:|")
        for n, ours, theirs in chains:
            o = seconds(ours, ("build_s", "save_s"))
            t = seconds(theirs, ("build_s", "save_s"))
            cell = lambda x, fmt="{:.2f}": "—" if x is None else fmt.format(x)  # noqa: E731
            print(f"| {n:,} | {cell(o)} | {cell(o and 1000 * o / n)} | {cell(ours.peak_rss_mb, '{:,.0f}')} "
                  f"| {cell(t)} | {cell(t and 1000 * t / n)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
