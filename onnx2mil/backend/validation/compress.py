"""Weight compression that keeps onnx2mil's lowerings, and which layers it hurts.

coremltools' ``palettize_weights`` / ``linear_quantize_weights`` re-run its whole default pass
pipeline on the compressed program, which puts back what onnx2mil removed on purpose: every
conv_transpose gets an ``output_shape`` again (CPU and ANE then disagree, coremltools#2281) and
rank-4-lowered 1-D convs may be folded back. ``compress`` applies the same compression pass
(``compression::palettize_weights`` / ``compression::linear_quantize_weights``, coremltools'
own) and nothing else.

Modes: ``linear`` (symmetric int8, or int4 from iOS18), ``palettize`` (k-means look-up tables;
needs scikit-learn, as in coremltools), ``palettize-uniform`` (evenly spaced tables, no extra
dependency). ``keep``: MIL op names whose weights stay uncompressed (see ``sensitivity``).
"""
from __future__ import annotations

import importlib.util
from typing import Iterable, Union

import coremltools as ct
import coremltools.optimize.coreml as cto
import numpy as np
from coremltools.converters.mil.mil.passes.pass_registry import PASS_REGISTRY  # noqa: F401 (registers the passes)

from ...errors import Onnx2MilError
from ..convert import pipeline as pipeline_mod
from ..runtime.predict import predict

MODES = ("linear", "palettize", "palettize-uniform")
COMPRESSED_WEIGHT_OPS = ("constexpr_lut_to_dense", "constexpr_affine_dequantize", "constexpr_blockwise_shift_scale",
                         "constexpr_sparse_to_dense", "constexpr_lut_to_sparse", "constexpr_sparse_blockwise_shift_scale",
                         "constexpr_cast")


class CompressionError(Onnx2MilError, ValueError):
    """A compression request that cannot be honoured, and why."""


def op_config(mode: str, nbits: int, weight_threshold: int):
    if mode not in MODES:
        raise CompressionError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    if mode == "linear":
        if nbits not in (4, 8):
            raise CompressionError(f"linear quantization takes nbits 4 or 8, not {nbits}")
        return cto.OpLinearQuantizerConfig(mode="linear_symmetric", dtype="int4" if nbits == 4 else "int8",
                                           weight_threshold=weight_threshold)
    if nbits not in (1, 2, 3, 4, 6, 8):
        raise CompressionError(f"palettization takes nbits 1, 2, 3, 4, 6 or 8, not {nbits}")
    if mode == "palettize" and importlib.util.find_spec("sklearn") is None:
        raise CompressionError("mode 'palettize' (k-means) needs scikit-learn, as coremltools does: "
                               "pip install scikit-learn, or use mode 'palettize-uniform'")
    return cto.OpPalettizerConfig(nbits=nbits, mode="kmeans" if mode == "palettize" else "uniform",
                                  weight_threshold=weight_threshold)


def compress(model: Union[str, ct.models.MLModel], *, mode: str = "linear", nbits: int = 8,
             keep: Iterable[str] = (), weight_threshold: int = 2048) -> ct.models.MLModel:
    """``model`` (an onnx2mil-built MLModel or .mlpackage) with its weights compressed, the saved
    program otherwise untouched (no pass re-run), metadata kept. ``keep``: MIL op names whose
    weights are left as they are. ``weight_threshold``: smaller weights are not compressed."""
    mlmodel = pipeline_mod.open_model(model)
    spec = mlmodel.get_spec()
    if nbits == 4 and mode == "linear" and spec.specificationVersion < ct.target.iOS18.value:
        raise CompressionError("4-bit linear quantization needs minimum_deployment_target iOS18 or later; "
                               "use nbits=8 or mode 'palettize-uniform'")
    config = cto.OptimizationConfig(global_config=op_config(mode, nbits, weight_threshold),
                                    op_name_configs={name: None for name in keep})
    name = "compression::linear_quantize_weights" if mode == "linear" else "compression::palettize_weights"
    passes = ct.PassPipeline(pass_names=[name, "common::dead_code_elimination"], pipeline_name="onnx2mil-compress")
    passes.set_options(name, {"config": config, "joint_compression": False})
    return pipeline_mod.reconvert(mlmodel, passes)


def compressed_weights(prog, held: set) -> dict[str, tuple[str, str]]:
    """{var name in ``held``: (MIL op name, compression op type)} for each held var computed,
    since the nearest held vars upstream, by an op that reads a compressed weight. ``held``: the
    vars that hold ONNX tensors (a fused or cast chain between them counts as one layer)."""
    producer = {v.name: op for op in pipeline_mod._all_ops(prog.functions["main"]) for v in op.outputs}
    out = {}
    for name in held:
        stack, seen = [producer.get(name)], set()
        while stack:
            op = stack.pop()
            if op is None or id(op) in seen or op.op_type == "const":
                continue
            seen.add(id(op))
            for var in op.inputs.values():
                for v in var if isinstance(var, (list, tuple)) else (var,):
                    source = producer.get(v.name)
                    if source is not None and source.op_type in COMPRESSED_WEIGHT_OPS:
                        out[name] = (op.name, source.op_type)
                    elif v.name not in held:
                        stack.append(source)
            if name in out:
                break
    return out


def output_sensitivity(mlmodel, layers: list[str], feeds, reference: dict, *, mode: str, nbits: int,
                       weight_threshold: int = 2048, progress=None) -> dict[str, float]:
    """{MIL op: worst output error (max abs err / max|ref|) with only that op's weights
    compressed}: how much each layer's compression reaches the outputs, one build per layer.
    ``reference``: the model's outputs from onnxruntime, keyed by ONNX name."""
    out = {}
    for k, layer in enumerate(layers):
        if progress:
            progress(f"sensitivity {k + 1}/{len(layers)}: {layer}")
        alone = compress(mlmodel, mode=mode, nbits=nbits, weight_threshold=weight_threshold,
                         keep=[other for other in layers if other != layer])
        got = predict(alone, feeds)
        out[layer] = max(float(np.abs(got[name].astype(np.float64) - ref).max() / (np.abs(ref).max() or 1.0))
                         for name, ref in reference.items())
    return out
