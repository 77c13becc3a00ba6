"""validate() against the two forwards it needs, on the Qwen2.5-Omni-size BigVGAN (115 M parameters).

    python benchmarks/validate_speed.py                 # fp32 and fp16 on the model's example mel
    python benchmarks/validate_speed.py --precision fp32

Each measurement runs in its own process (wall time and that process's own peak RSS, VmHWM):
- ``ort``: an onnxruntime session on the ONNX file and one run;
- ``interpreter``: ``onnx2mil.predict`` on the saved .mlpackage (loading the saved program included);
- ``validate``: ``onnx2mil.validate(onnx, mlpackage, inputs)`` — every tensor, accumulated and local.
The goal (issue 9): validate <= 3x (ort + interpreter); peak RSS <= 2x the fp32 weights + the
largest activation set. The package is built once beforehand (not timed).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODEL = "bigvgan-qwen2.5-omni"


def peak_rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def task(name: str, workdir: Path) -> dict:
    import numpy as np

    feeds = dict(np.load(workdir / "inputs.npz"))
    onnx_path, package = workdir / "model.onnx", workdir / "model.mlpackage"
    t0 = time.perf_counter()
    if name == "ort":
        import onnxruntime as ort

        session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
        session.run(None, feeds)
    elif name == "interpreter":
        import onnx2mil

        onnx2mil.predict(str(package), feeds)
    elif name == "validate":
        import onnx2mil

        report = onnx2mil.validate(str(onnx_path), str(package), inputs=feeds)
        return {"seconds": time.perf_counter() - t0, "peak_rss_mb": peak_rss_mb(), "ok": report.ok,
                "counts": report.counts}
    return {"seconds": time.perf_counter() - t0, "peak_rss_mb": peak_rss_mb()}


def prepare(workdir: Path, precision: str) -> dict:
    import numpy as np
    import onnx

    import onnx2mil
    from onnx2mil import models

    onnx_path = models.save(MODEL, workdir / "model.onnx")
    mel = models.example_inputs(MODEL)
    np.savez(workdir / "inputs.npz", **mel)
    onnx2mil.save(onnx2mil.build_coreml(str(onnx_path), compute_precision=precision), workdir / "model.mlpackage")
    weights = sum(np.prod(t.dims) * 4 for t in onnx.load(str(onnx_path), load_external_data=False).graph.initializer)
    return {"weights_mb": float(weights) / 2 ** 20}


def run(precision: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        info = prepare(workdir, precision)
        for name in ("ort", "interpreter", "validate"):
            out = subprocess.run([sys.executable, __file__, "--task", name, "--workdir", tmp],
                                 capture_output=True, text=True)
            if out.returncode:
                raise RuntimeError(f"task {name} failed:\n{out.stderr[-3000:]}")
            info[name] = json.loads(out.stdout.strip().splitlines()[-1])
    info["ratio"] = info["validate"]["seconds"] / (info["ort"]["seconds"] + info["interpreter"]["seconds"])
    info["rss_goal_mb"] = 2 * info["weights_mb"]
    return info


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--precision", choices=("fp32", "fp16"), action="append")
    parser.add_argument("--task", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.task:
        print(json.dumps(task(args.task, Path(args.workdir))))
        return 0
    print(f"| precision | ORT session + run (s) | interpreter load + run (s) | validate (s) | ratio | "
          f"validate peak RSS (MB) | 2x fp32 weights (MB) | verdict |")
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    for precision in args.precision or ["fp32", "fp16"]:
        r = run(precision)
        print(f"| {precision} | {r['ort']['seconds']:.2f} | {r['interpreter']['seconds']:.2f} | "
              f"{r['validate']['seconds']:.2f} | {r['ratio']:.2f}x | {r['validate']['peak_rss_mb']:.0f} | "
              f"{r['rss_goal_mb']:.0f} | {'OK' if r['validate']['ok'] else 'DIVERGES'} {r['validate']['counts']} |",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
