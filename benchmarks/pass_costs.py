"""What each of coremltools' passes costs in an onnx2mil build, and whether it changes anything.

    python benchmarks/pass_costs.py                               # bigvgan-qwen2.5-omni, fp16
    python benchmarks/pass_costs.py transformer-tiny resnet-18 --precision fp32 --top 30
    python benchmarks/pass_costs.py tests/real_exports/qwen25omni_bigvgan_fulldepth_dynamo.onnx

For issue 12 (own the pass pipeline): every pass of the pipeline ``build_coreml`` runs is timed
(``AbstractGraphPass.__call__``) and its effect recorded as the change in the program's op count
and op-type histogram (a pass that rewrites ops one for one, e.g. const values, shows as "same").
Prints, per model, the total pass time and the passes by cost, aggregated over repeated runs of the
same pass; "changed" counts the runs that changed the program; "skipped" the runs the curated
pipeline's gates skipped (``passes.GATES``, read from the model's metadata; they cost one op-type
walk of the program, counted in the build but not in any pass). A model is a reference model's
name (built in memory before the clock starts) or an .onnx path (read by the build, as a user's).
"""
from __future__ import annotations

import argparse
import collections
import sys
import time

from coremltools.converters.mil.mil.passes.graph_pass import AbstractGraphPass


def histogram(prog) -> collections.Counter:
    counts: collections.Counter = collections.Counter()
    stack = [prog.functions["main"]]
    while stack:
        block = stack.pop()
        for op in block.operations:
            counts[op.op_type] += 1
            stack.extend(op.blocks)
    return counts


def measure(name: str, precision: str) -> tuple[list, float, dict]:
    import onnx2mil
    from onnx2mil import models
    from onnx2mil.backend.convert import pipeline

    model = name if name.endswith(".onnx") else models.build(name)

    records: list = []
    original = AbstractGraphPass.__call__

    def timed(self, prog):
        before = histogram(prog)
        t0 = time.perf_counter()
        result = original(self, prog)
        records.append((str(self), time.perf_counter() - t0, histogram(prog) != before))
        return result

    AbstractGraphPass.__call__ = timed
    try:
        t0 = time.perf_counter()
        mlmodel = onnx2mil.build_coreml(model, compute_precision=precision)
        total = time.perf_counter() - t0
    finally:
        AbstractGraphPass.__call__ = original
    return records, total, pipeline.read_pipeline(mlmodel).get("gated", {})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", default=["bigvgan-qwen2.5-omni"])
    parser.add_argument("--precision", choices=("fp16", "fp32"), default="fp16")
    parser.add_argument("--top", type=int, default=20)
    args = parser.parse_args()
    for name in args.models:
        records, total, gated = measure(name, args.precision)
        skipped: dict = {}
        for key, (runs, _why) in gated.items():
            skipped[key.split("/", 1)[1].split("::")[1]] = skipped.get(key.split("/", 1)[1].split("::")[1], 0) + runs
        by_pass: dict = {}
        for pass_name, seconds, changed in records:
            entry = by_pass.setdefault(pass_name, [0.0, 0, 0])
            entry[0] += seconds
            entry[1] += 1
            entry[2] += changed
        spent = sum(seconds for _, seconds, _ in records)
        print(f"\n## {name} ({args.precision}): build {total:.2f} s, of which {len(records)} pass runs "
              f"{spent:.2f} s; {sum(1 for e in by_pass.values() if e[2])} of {len(by_pass)} passes changed "
              f"the program; {sum(skipped.values())} runs of {len(skipped)} passes skipped by a gate\n")
        print("| pass | runs | seconds | share of build | changed the program | skipped by its gate |")
        print("|---|---:|---:|---:|---|---:|")
        for pass_name, (seconds, runs, changed) in sorted(by_pass.items(), key=lambda kv: -kv[1][0])[:args.top]:
            print(f"| {pass_name} | {runs} | {seconds:.3f} | {100 * seconds / total:.1f}% | "
                  f"{f'yes ({changed} of {runs})' if changed else 'no'} | {skipped.get(pass_name, 0)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
