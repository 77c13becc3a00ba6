"""Build time of onnx's pytorch-converted ``test_MaxPool2d_stride_padding_dilation`` (one MaxPool,
kernel 60x80, dilation 10, stride 10, on 1x1x1000x1000), for issue 12's "no emission that grows
with kernel area".

    python benchmarks/dilated_pool.py            # this tree
    PYTHONPATH=/path/to/other/tree python benchmarks/dilated_pool.py

Prints the MIL ops the builder emits for the node (before coremltools' passes), the op count of
the final program, and the wall and CPU time of ``build_coreml`` at fp32 and fp16, then the
interpreter's forward and its match with onnx's expected output.
"""
from __future__ import annotations

import collections
import logging
import os
import sys
import time
import warnings

import numpy as np


def measure(precision: str) -> dict:
    """build_coreml of the case at ``precision``: wall and CPU seconds, the final program's ops, the
    interpreter's forward time and its max |error| against onnx's expected output."""
    warnings.simplefilter("ignore")
    logging.getLogger("coremltools").setLevel(logging.ERROR)
    import onnx2mil
    from onnx2mil import conformance

    case, _ = conformance._collect_pytorch_converted("MaxPool2d_stride_padding_dilation$")[0]
    (inputs, outputs), = case.data_sets
    name = case.model.graph.input[0].name
    x, expected = conformance._array(inputs[0]), conformance._array(outputs[0])
    wall, cpu = time.perf_counter(), time.process_time()
    mlmodel = onnx2mil.build_coreml(case.model, compute_precision=precision)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    ops = collections.Counter()
    stack = [onnx2mil.load_saved_program(mlmodel).functions["main"]]
    while stack:
        block = stack.pop()
        for op in block.operations:
            ops[op.op_type] += 1
            stack.extend(op.blocks)
    start = time.perf_counter()
    got = onnx2mil.predict(mlmodel, {name: x})[case.model.graph.output[0].name]
    forward = time.perf_counter() - start
    return {"build_s": wall, "build_cpu_s": cpu, "ops": dict(ops), "forward_s": forward,
            "max_abs_err": float(np.max(np.abs(np.asarray(got, np.float64) - expected)))}


def main() -> int:
    import onnx2mil
    print(f"onnx2mil from {os.path.dirname(onnx2mil.__file__)}; load average {os.getloadavg()[0]:.1f}")
    for precision in sys.argv[1:] or ["fp32", "fp16"]:
        r = measure(precision)
        print(f"{precision}: build_coreml {r['build_s']:.2f} s wall, {r['build_cpu_s']:.2f} s CPU; final program "
              f"{sum(r['ops'].values())} ops ({r['ops']}); forward {r['forward_s']:.2f} s, max |error| vs onnx's "
              f"expected output {r['max_abs_err']:.3g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
