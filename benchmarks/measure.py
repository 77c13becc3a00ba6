"""One measured task per process, started by ``run.py``: ``python measure.py TASK ARGS_JSON RESULT_JSON``.

The parent times the whole process; this side times the phases that matter (import, build, save,
forward...) and writes them, or the error, with its peak RSS (VmHWM) to RESULT_JSON.
Imports are inside the tasks: the onnx2coreml task runs under another interpreter (its own venv), as do
the torch tasks (a venv with torch).
"""
from __future__ import annotations

import cProfile
import json
import os
import sys
import time
import traceback
from pathlib import Path


def _clock():
    return time.perf_counter()


def _rss_mb(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0
    raise RuntimeError(f"no {field} in /proc/self/status")


def _reset_peak() -> None:
    """Reset VmHWM to the current RSS (Linux >= 4.0: writing 5 to clear_refs)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


class PhaseRecorder:
    """Wraps functions so each call records its time and its own peak RSS; nested phases (a pass
    pipeline inside ct.convert) fold their peak into the enclosing one."""

    def __init__(self):
        self.rows: list[dict] = []
        self._stack: list[dict] = []

    def wrap(self, owner, attr: str, label) -> None:
        original = getattr(owner, attr)
        recorder = self

        def wrapper(*args, **kwargs):
            name = label(*args, **kwargs) if callable(label) else label
            if recorder._stack:
                parent = recorder._stack[-1]
                parent["max_seen"] = max(parent["max_seen"], _rss_mb("VmHWM"))
            _reset_peak()
            frame = {"max_seen": 0.0, "depth": len(recorder._stack), "start": _clock()}
            recorder._stack.append(frame)
            t0 = _clock()
            try:
                return original(*args, **kwargs)
            finally:
                recorder._stack.pop()
                peak = max(frame["max_seen"], _rss_mb("VmHWM"))
                if recorder._stack:
                    recorder._stack[-1]["max_seen"] = max(recorder._stack[-1]["max_seen"], peak)
                recorder.rows.append({"phase": name, "depth": frame["depth"], "start": frame["start"], "s": _clock() - t0,
                                      "peak_mb": peak, "rss_after_mb": _rss_mb("VmRSS")})

        setattr(owner, attr, wrapper)


def _record_conversion_phases(recorder: PhaseRecorder) -> None:
    """The conversion's phases: onnx2mil's own steps and, inside ct.convert, coremltools' pass
    pipelines and its proto/weights serialisation."""
    import onnx2mil
    from onnx2mil.backend.convert import build, pipeline
    from coremltools.converters.mil.mil.passes.pass_pipeline import PassPipelineManager
    from coremltools.converters.mil.backend.mil import load as mil_backend

    recorder.wrap(build, "load_graph", "onnx2mil: load + check + shape inference + constant folding")
    recorder.wrap(build, "collect_refusals", "onnx2mil: support checks")
    recorder.wrap(build, "emit_program", "onnx2mil: emit MIL (builders)")
    recorder.wrap(pipeline, "convert", "ct.convert (passes + serialisation)")
    recorder.wrap(pipeline, "final_program", "onnx2mil: name map (final program)")
    recorder.wrap(onnx2mil, "save", "onnx2mil.save")
    recorder.wrap(mil_backend, "load", "coremltools: MIL -> protobuf + weight file")
    recorder.wrap(PassPipelineManager, "apply_pipeline",
                  lambda prog, pass_pipeline: f"coremltools: {pass_pipeline} pipeline ({len(pass_pipeline.passes)} passes)")
    # onnx2mil's build runs its pipelines through the curated apply_pipeline made for the program
    from onnx2mil.backend.convert import passes
    make_curated = passes._gated_apply_pipeline

    def curated(*args, **kwargs):
        holder = type("Holder", (), {})()
        holder.apply = make_curated(*args, **kwargs)
        recorder.wrap(holder, "apply", lambda prog, pass_pipeline:
                      f"onnx2mil's curated {pass_pipeline} pipeline ({len(pass_pipeline.passes)} passes before gating)")
        return holder.apply

    passes._gated_apply_pipeline = curated
    # getattr unwrapped the staticmethod; keep it one so instance calls do not bind self.
    PassPipelineManager.apply_pipeline = staticmethod(PassPipelineManager.apply_pipeline)


def convert(args: dict) -> dict:
    """onnx2mil.build_coreml(path) + onnx2mil.save; optionally under cProfile; with ``phases``,
    time and peak RSS of each phase."""
    t0 = _clock()
    import onnx2mil
    t_import = _clock() - t0
    recorder = PhaseRecorder() if args.get("phases") else None
    if recorder:
        _record_conversion_phases(recorder)
    profiler = cProfile.Profile() if args.get("profile") else None
    if profiler:
        profiler.enable()
    t0 = _clock()
    mlmodel = onnx2mil.build_coreml(args["onnx"], compute_precision=args.get("precision"))
    t_build = _clock() - t0
    t0 = _clock()
    onnx2mil.save(mlmodel, args["out"])
    t_save = _clock() - t0
    if profiler:
        profiler.disable()
        profiler.dump_stats(args["profile"])
    result = {"import_s": t_import, "build_s": t_build, "save_s": t_save}
    if recorder:
        result["phases"] = recorder.rows
        # The recorder resets VmHWM per phase: the process peak is the largest phase peak.
        result["peak_rss_mb"] = max([p["peak_mb"] for p in recorder.rows] + [peak_rss_mb()])
    return result


def io_floor(args: dict) -> dict:
    """The least a converter must do: read the ONNX file (protobuf + external data) and write every
    weight, cast to the saved precision, into one file, and fsync it (issue 12's floor: "onnx.load +
    arrays + write and fsync the weights")."""
    import numpy as np
    import onnx
    from onnx import numpy_helper
    t0 = _clock()
    model = onnx.load(args["onnx"], load_external_data=True)
    t_read = _clock() - t0
    dtype = np.float16 if args.get("precision", "fp16") == "fp16" else np.float32
    t0 = _clock()
    written = 0
    with open(args["out"], "wb") as f:
        for t in model.graph.initializer:
            a = numpy_helper.to_array(t)
            if a.dtype == np.float32:
                a = a.astype(dtype)
            f.write(a.tobytes())
            written += a.nbytes
        t_write = _clock() - t0
        t0 = _clock()
        f.flush()
        os.fsync(f.fileno())  # as onnx2mil.save does: the weights are on disk when it returns
    t_fsync = _clock() - t0
    return {"read_s": t_read, "write_s": t_write, "fsync_s": t_fsync, "bytes_written": written}


def onnx2coreml_convert(args: dict) -> dict:
    """The onnx2coreml package (PyPI) on the same ONNX file; ``constants_as_initializers`` first
    rewrites Constant nodes to initializers (what torch's constant folding leaves)."""
    import onnx
    t0 = _clock()
    import onnx2coreml
    t_import = _clock() - t0
    model = onnx.load(args["onnx"], load_external_data=True)
    if args.get("constants_as_initializers"):
        kept = []
        for node in model.graph.node:
            if node.op_type == "Constant" and len(node.attribute) == 1 and node.attribute[0].name == "value":
                tensor = onnx.helper.get_attribute_value(node.attribute[0])
                tensor.name = node.output[0]
                model.graph.initializer.append(tensor)
            else:
                kept.append(node)
        del model.graph.node[:]
        model.graph.node.extend(kept)
    t0 = _clock()
    mlmodel = onnx2coreml.convert(model, compute_precision=args.get("precision", "fp16"))
    t_build = _clock() - t0
    t0 = _clock()
    mlmodel.save(args["out"])
    t_save = _clock() - t0
    return {"import_s": t_import, "build_s": t_build, "save_s": t_save, "version": onnx2coreml.__version__}


def _small_vocoder():
    """The small vocoder as tests/real_exports/export.py builds it (Qwen2.5-Omni's token2wav BigVGAN,
    full depth, 64 channels, seeded random weights; nothing downloaded) and its seeded example input."""
    real_exports = str(Path(__file__).resolve().parent.parent / "tests" / "real_exports")
    if real_exports not in sys.path:
        sys.path.insert(0, real_exports)
    import export
    import torch
    spec = next(s for s in export.SPECS if s.name == "qwen25omni_bigvgan_fulldepth")
    torch.manual_seed(export.SEED)
    model = spec.build()
    return model, export.example_args(spec), spec.inputs[0]["name"]


def torch_convert(args: dict) -> dict:
    """coremltools' torch path on the small vocoder: ``torch.jit.trace`` + ``ct.convert(traced,
    convert_to="mlprogram", compute_precision=...)`` + save (runs under a venv with torch)."""
    t0 = _clock()
    import coremltools as ct
    import torch
    import transformers
    t_import = _clock() - t0
    t0 = _clock()
    model, example, input_name = _small_vocoder()
    t_model = _clock() - t0
    t0 = _clock()
    traced = torch.jit.trace(model, example)
    t_trace = _clock() - t0
    precision = {"fp16": ct.precision.FLOAT16, "fp32": ct.precision.FLOAT32}[args.get("precision", "fp16")]
    t0 = _clock()
    mlmodel = ct.convert(traced, inputs=[ct.TensorType(name=input_name, shape=tuple(example[0].shape))],
                         convert_to="mlprogram", compute_precision=precision)
    t_convert = _clock() - t0
    t0 = _clock()
    mlmodel.save(args["out"])
    t_save = _clock() - t0
    return {"import_s": t_import, "model_s": t_model, "trace_s": t_trace, "convert_s": t_convert, "save_s": t_save,
            "versions": {"torch": torch.__version__, "coremltools": ct.__version__,
                         "transformers": transformers.__version__}}


def torch_forward(args: dict) -> dict:
    """The small vocoder's torch forward on its example input, written with the input to
    ``reference`` (npz); with ``onnx``, onnxruntime on that export against it (same model?)."""
    import numpy as np
    import torch
    model, example, input_name = _small_vocoder()
    with torch.no_grad():
        expected = model(*example).numpy()
    feeds = {input_name: example[0].numpy()}
    np.savez(args["reference"], expected=expected, **feeds)
    result = {"expected_peak": float(np.abs(expected).max())}
    if args.get("onnx"):
        import onnxruntime as ort
        sess = ort.InferenceSession(args["onnx"], providers=["CPUExecutionProvider"])
        got = sess.run(None, feeds)[0]
        result["onnxruntime_max_abs_err"] = float(np.abs(got.astype(np.float64) - expected).max())
    return result


def agreement(args: dict) -> dict:
    """Each package's single output, run by onnx2mil.predict (the MIL interpreter runs any ML
    Program), against the reference npz's ``expected``: max abs error per package."""
    import numpy as np
    import onnx2mil
    reference = dict(np.load(args["reference"]))
    expected = reference.pop("expected").astype(np.float64)
    errors = {}
    for label, package in args["packages"].items():
        outputs = onnx2mil.predict(package, reference)
        (got,) = outputs.values()
        if got.shape != expected.shape:
            raise RuntimeError(f"{label}: output shape {got.shape}, torch's {expected.shape}")
        errors[label] = float(np.abs(got.astype(np.float64) - expected).max())
    return {"max_abs_err": errors}


def import_onnx_coreml(args: dict) -> dict:
    """Whether the old onnx-coreml (1.3, 2020) imports at all next to this coremltools."""
    import onnx_coreml  # noqa: F401
    return {}


def _median_time(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        t0 = _clock()
        out = fn()
        times.append(_clock() - t0)
    times.sort()
    return times[len(times) // 2], out


def forward(args: dict) -> dict:
    """onnxruntime vs the MIL interpreter (onnx2mil.predict) on the same inputs."""
    import numpy as np
    import onnxruntime as ort
    feeds = dict(np.load(args["inputs"]))
    repeats = args.get("repeats", 3)
    t0 = _clock()
    sess = ort.InferenceSession(args["onnx"], providers=["CPUExecutionProvider"])
    t_ort_load = _clock() - t0
    t_ort, ref = _median_time(lambda: sess.run(None, feeds), repeats)
    result = {"ort_load_s": t_ort_load, "ort_run_s": t_ort}
    import onnx2mil
    predict = getattr(onnx2mil, "predict", None)
    if predict is None:
        raise RuntimeError("onnx2mil has no predict() yet")
    t0 = _clock()
    first = predict(args["mlpackage"], feeds)
    result["mil_first_s"] = _clock() - t0
    t_mil, out = _median_time(lambda: predict(args["mlpackage"], feeds), repeats)
    result["mil_run_s"] = t_mil
    name = sess.get_outputs()[0].name
    diff = np.abs(np.asarray(out[name], dtype=np.float64) - ref[0])
    result["max_abs_diff"] = float(diff.max())
    result["mean_abs_diff"] = float(diff.mean())
    del first
    return result


def interpreter_vs_ort(args: dict) -> dict:
    """interpreter_vs_ort.py's measurement of one model at one precision (threads set before numpy loads)."""
    import interpreter_vs_ort as bench
    bench.limit_threads(args["threads"])
    return bench.measure_model(args["model"], args["precision"], args["threads"], args["repeat"], args["cache_dir"])


def dilated_pool(args: dict) -> dict:
    """dilated_pool.py's measurement at one precision."""
    import dilated_pool as bench
    return bench.measure(args["precision"])


def validate(args: dict) -> dict:
    """onnx2mil.validate on a built package: every tensor against onnxruntime."""
    import numpy as np
    import onnx2mil
    feeds = dict(np.load(args["inputs"]))
    t0 = _clock()
    report = onnx2mil.validate(args["onnx"], args["mlpackage"], inputs=feeds)
    t_validate = _clock() - t0
    summary = {"validate_s": t_validate, "ok": bool(report.ok), "counts": report.counts}
    divergence = report.first_divergence
    if divergence is not None:
        summary["first_divergence"] = f"{divergence.node} ({divergence.op_type}) -> {divergence.tensor}"
    return summary


def synthetic_chain(args: dict) -> dict:
    """Write a chain of ``nodes`` Add/Mul/Relu nodes on a (1, 16) tensor, each Add/Mul with its own
    (16,) initializer, to ``out``."""
    import numpy as np
    import onnx
    import onnx.helper as oh
    from onnx import numpy_helper
    n, width = args["nodes"], 16
    rng = np.random.default_rng(0)
    nodes, inits, x = [], [], "x"
    for i in range(n):
        op = ("Add", "Mul", "Relu")[i % 3]
        y = f"/chain/{op}_{i}_output_0"
        if op == "Relu":
            nodes.append(oh.make_node(op, [x], [y], name=f"/chain/{op}_{i}"))
        else:
            low, high = (-0.1, 0.1) if op == "Add" else (0.9, 1.1)
            inits.append(numpy_helper.from_array(rng.uniform(low, high, width).astype(np.float32), f"chain.{i}.c"))
            nodes.append(oh.make_node(op, [x, f"chain.{i}.c"], [y], name=f"/chain/{op}_{i}"))
        x = y
    nodes.append(oh.make_node("Identity", [x], ["y"], name="/chain/Identity"))
    graph = oh.make_graph(nodes, f"chain{n}", [oh.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, width])],
                          [oh.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, width])], inits)
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 17)], ir_version=8)
    onnx.save_model(model, args["out"])
    return {"nodes": len(nodes)}


def import_only(args: dict) -> dict:
    """The baseline: the interpreter with onnx2mil (coremltools, onnx, onnxruntime) imported."""
    t0 = _clock()
    import onnx2mil  # noqa: F401
    return {"import_s": _clock() - t0}


TASKS = {
    "import_only": import_only,
    "convert": convert,
    "io_floor": io_floor,
    "onnx2coreml": onnx2coreml_convert,
    "import_onnx_coreml": import_onnx_coreml,
    "torch_convert": torch_convert,
    "torch_forward": torch_forward,
    "agreement": agreement,
    "forward": forward,
    "validate": validate,
    "interpreter_vs_ort": interpreter_vs_ort,
    "dilated_pool": dilated_pool,
    "synthetic_chain": synthetic_chain,
}


def peak_rss_mb() -> float:
    """This process's peak resident set since exec (VmHWM). ``ru_maxrss`` from wait4 is not used:
    Linux carries the parent's high-water mark at fork into the child's."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    raise RuntimeError("no VmHWM in /proc/self/status")


def main() -> None:
    task, args, result_path = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
    try:
        result = {"error": None, **TASKS[task](args)}
    except Exception as e:  # noqa: BLE001 - any failure is the measurement's result, reported by run.py
        result = {"error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()}
    result.setdefault("peak_rss_mb", peak_rss_mb())
    Path(result_path).write_text(json.dumps(result))


if __name__ == "__main__":
    main()
