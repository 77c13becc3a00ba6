"""Quiet by default: no coremltools import lines or conversion noise; a warning that matters (an fp16
overflow of a constant) is reported once, naming the node."""
import os
import subprocess
import sys
import warnings

import numpy as np
import onnx
import onnx.helper as oh
import pytest
from onnx import numpy_helper

import onnx2mil
from onnx2mil.errors import PrecisionWarning


def masked_attention(fill):
    """Scores masked by Where(cond, scores, fill), then Softmax: the usual causal attention mask."""
    cond = numpy_helper.from_array(np.tril(np.ones((5, 5), bool)), "causal")
    graph = oh.make_graph([oh.make_node("MatMul", ["q", "k"], ["s"], name="/attn/MatMul"),
                           oh.make_node("Where", ["causal", "s", "fill"], ["m"], name="/attn/Where"),
                           oh.make_node("Softmax", ["m"], ["y"], name="/attn/Softmax", axis=-1)],
                          "attn", [oh.make_tensor_value_info("q", 1, [1, 5, 8]),
                                   oh.make_tensor_value_info("k", 1, [1, 8, 5])],
                          [oh.make_tensor_value_info("y", 1, [1, 5, 5])],
                          [cond, numpy_helper.from_array(np.array(fill, np.float32), "fill")])
    return oh.make_model(graph, opset_imports=[oh.make_opsetid("", 17)])


def build_recording(model, **kwargs) -> list:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        onnx2mil.build_coreml(model, **kwargs)
    return [(w.category, str(w.message)) for w in caught if not issubclass(w.category, ResourceWarning)]


def test_an_fp16_overflow_of_a_constant_is_one_warning_naming_the_node():
    caught = build_recording(masked_attention(np.finfo(np.float32).min))
    assert len(caught) == 1, caught  # numpy's anonymous "overflow encountered in cast" is not among them
    category, message = caught[0]
    assert category is PrecisionWarning
    assert message.startswith("fp16: node '/attn/Where' (Where): constant 'fill' holds magnitudes up to 3.4e+38")


@pytest.mark.parametrize("fill, precision", [(np.finfo(np.float32).min, "fp32"), (-1e4, "fp16"), (-np.inf, "fp16"),
                                             (-1e9, "fp16")])
def test_no_warning_where_nothing_overflows(fill, precision):
    # -1e9: coremltools' fp16 pass keeps an op with such a constant in fp32; -inf stays -inf
    assert build_recording(masked_attention(fill), compute_precision=precision) == []


def start(cwd, *argv) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    return subprocess.Popen([sys.executable, "-c", *argv], cwd=cwd, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


CLI = "import sys\nfrom onnx2mil.cli import main\nsys.exit(main(['convert', sys.argv[1], '-o', sys.argv[2]]))\n"


@pytest.mark.skipif(sys.platform == "darwin", reason="coremltools' proxies load on macOS")
def test_importing_onnx2mil_first_prints_nothing_and_the_cli_only_what_matters(tmp_path):
    onnx.save(masked_attention(np.finfo(np.float32).min), str(tmp_path / "attn.onnx"))
    onnx.save(masked_attention(-1e4), str(tmp_path / "plain.onnx"))
    procs = [start(tmp_path, "import onnx2mil\nimport coremltools as ct\n"),  # the README's order
             start(tmp_path, CLI, "plain.onnx", "plain.mlpackage"),
             start(tmp_path, CLI, "attn.onnx", "attn.mlpackage")]
    (imports, plain, attn) = [(p.communicate(), p.returncode) for p in procs]
    assert imports == (("", ""), 0)
    assert plain == (("wrote plain.mlpackage (fp16)\n", ""), 0)
    (out, err), code = attn
    assert code == 0 and out == "wrote attn.mlpackage (fp16)\n"
    assert err.splitlines() == [
        "onnx2mil convert: warning: fp16: node '/attn/Where' (Where): constant 'fill' holds magnitudes up to "
        "3.4e+38, beyond fp16's 65504; the fp16 program stores them as ±inf"]
