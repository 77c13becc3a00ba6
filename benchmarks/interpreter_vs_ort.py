"""Forward time of the MIL interpreter vs onnxruntime on the reference models; prints a table.

    python benchmarks/interpreter_vs_ort.py                       # the small reference models
    python benchmarks/interpreter_vs_ort.py --models bigvgan-qwen2.5-omni --threads 2

Models are reference models (``onnx2mil.models``) or ``real:<name>`` for a torch export of
tests/real_exports (``real:qwen25omni_bigvgan_fulldepth_dynamo``: Qwen2.5-Omni's BigVGAN at full
depth with small channels, as transformers exports it). Both runtimes get the same thread count
(``--threads``, default 1: BLAS threads spin badly on a loaded machine, which would time the
scheduler rather than the interpreter). The interpreter is timed as ``predict`` on the opened
``MLModel`` (program loaded and planned by the warm-up call); ``predict`` on a path also re-checks
the package's files on every call. Converted packages are cached in ``--cache-dir`` since
building the large models takes minutes.
"""
from __future__ import annotations

import argparse
import os
import sys
import time


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["bigvgan-tiny", "real:qwen25omni_bigvgan_fulldepth_dynamo",
                                                        "resnet-18", "transformer-tiny"])
    parser.add_argument("--precision", choices=["fp32", "fp16"], default="fp32")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=20, help="timed runs after one warm-up; the best is kept")
    parser.add_argument("--cache-dir", default=os.path.join(os.path.expanduser("~"), ".cache", "onnx2mil", "bench"))
    return parser.parse_args(argv)


def best_times(fns, repeat: int) -> list[float]:
    """The best of ``repeat`` timed calls of each function after one warm-up, the functions
    interleaved call by call so that both see the same moments of a shared machine."""
    for fn in fns:
        fn()
    best = [float("inf")] * len(fns)
    for _ in range(repeat):
        for i, fn in enumerate(fns):
            start = time.perf_counter()
            fn()
            best[i] = min(best[i], time.perf_counter() - start)
    return best


def milliseconds(seconds: float) -> str:
    """Three significant digits down to 0.01 ms (the transformer's forwards take a few tenths)."""
    return f"{seconds * 1e3:.2f}" if seconds < 0.01 else f"{seconds * 1e3:.1f}"


def model_and_feeds(name: str):
    """(onnx.ModelProto, feeds) of a reference model or of ``real:<name>`` from tests/real_exports."""
    from onnx2mil import models

    if not name.startswith("real:"):
        return models.build(name), models.example_inputs(name)
    import onnx

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))
    from real_exports import entry, make_feeds, path

    model = entry(name[len("real:"):])
    return onnx.load(str(path(model))), make_feeds(model)


def limit_threads(threads: int) -> None:
    """One thread count for BLAS and OpenMP: must precede numpy's import to take effect."""
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)


def measure_model(name: str, precision: str, threads: int, repeat: int, cache_dir: str) -> dict:
    """One model: {"mil_ops", "ort_s", "mil_s", "ratio", "rel_error"} (best of ``repeat`` each,
    interleaved; rel_error = max |interpreter - onnxruntime| / max |onnxruntime| over the outputs)."""
    import logging
    logging.getLogger("coremltools").setLevel(logging.ERROR)
    import numpy as np
    import onnxruntime as ort

    import onnx2mil
    from onnx2mil.backend.convert import pipeline

    model, feeds = model_and_feeds(name)
    path = os.path.join(cache_dir, f"{name.replace(':', '-')}-{precision}.mlpackage")
    if not os.path.exists(path):
        onnx2mil.save(onnx2mil.build_coreml(model, compute_precision=precision), path)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    del model
    reference = dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds)))
    mlmodel = pipeline.open_model(path)
    got = onnx2mil.predict(mlmodel, feeds)
    error = max(float(np.max(np.abs(got[k].astype(np.float64) - v)) / max(1e-12, float(np.max(np.abs(v)))))
                for k, v in reference.items())
    n_ops = sum(1 for op in onnx2mil.load_saved_program(path).functions["main"].operations if op.op_type != "const")
    t_ort, t_mil = best_times([lambda: session.run(None, feeds), lambda: onnx2mil.predict(mlmodel, feeds)], repeat)
    return {"mil_ops": n_ops, "ort_s": t_ort, "mil_s": t_mil, "ratio": t_mil / t_ort, "rel_error": error,
            "repeat": repeat}


def main(argv=None) -> int:
    args = parse_args(argv)
    limit_threads(args.threads)
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"MIL interpreter vs onnxruntime ({args.precision}, {args.threads} thread(s))")
    for column in ("model", "MIL ops", "onnxruntime ms", "interpreter ms", "ratio", "max |diff| / max |ref|"):
        table.add_column(column, justify="right" if column != "model" else "left")
    for name in args.models:
        r = measure_model(name, args.precision, args.threads, args.repeat, args.cache_dir)
        table.add_row(name, str(r["mil_ops"]), milliseconds(r["ort_s"]), milliseconds(r["mil_s"]),
                      f"{r['ratio']:.2f}x", f"{r['rel_error']:.2e}")
    Console().print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
