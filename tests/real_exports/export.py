"""Export the real-architecture corpus: small configs of transformers models, random seeded weights,
``torch.onnx.export`` at opset 18 with the legacy (TorchScript) and/or dynamo exporter.

    pip install -e '.[export]'
    python tests/real_exports/export.py            # every model; writes *.onnx and manifest.json here
    python tests/real_exports/export.py bert vit   # only the models whose name starts with these

Nothing is downloaded: configs are built in code and HF_HUB_OFFLINE=1 is set before transformers is
imported. Every file is checked with onnx.checker (full check) and run by onnxruntime against
torch's own output on the manifest's inputs; the agreement is recorded in the manifest.
"""
from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import warnings  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Callable  # noqa: E402

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402

HERE = Path(__file__).resolve().parent
OPSET = 18
SEED = 0
MAX_FILE_BYTES = 3 * 1024 * 1024

sys.path.insert(0, str(HERE))
import corpus  # noqa: E402  (the manifest's input generator: the feeds checked here are the tests' feeds)


# ---- the models -----------------------------------------------------------------------------------

@dataclass
class Spec:
    """One model to export: how to build it, its inputs (name, shape, dtype, range), its outputs."""

    name: str
    source_class: str
    exporters: tuple
    covers: list
    build: Callable[[], torch.nn.Module]
    inputs: list            # [{"name", "shape", "dtype", "range": [lo, hi] | "kind"}], see corpus.py
    outputs: list
    notes: str = ""
    exporter_notes: dict = field(default_factory=dict)   # exporter -> what it does with this model


class Outputs(torch.nn.Module):
    """Calls a transformers model with keyword inputs and returns the named outputs as a tuple
    (both exporters need a flat tuple)."""

    def __init__(self, model: torch.nn.Module, input_names: list, output_keys: list):
        super().__init__()
        self.model = model
        self.input_names = list(input_names)
        self.output_keys = list(output_keys)

    def forward(self, *args):
        out = self.model(**dict(zip(self.input_names, args)))
        if isinstance(out, torch.Tensor):
            return out
        return tuple(out[k] for k in self.output_keys)


def perturb(model: torch.nn.Module, rng: torch.Generator) -> None:
    """Trained-like parameters where transformers' initialisation leaves constants: norm weights
    (LayerNorm, GroupNorm, BatchNorm, RMSNorm) at 1, biases and running means at 0, running
    variances at 1. Constant biases would leave every bias add untested, and the dynamo exporter
    merges equal initializers into one."""
    with torch.no_grad():
        for m in model.modules():
            weight, bias = getattr(m, "weight", None), getattr(m, "bias", None)
            if "Norm" in type(m).__name__:
                if isinstance(weight, torch.nn.Parameter):
                    weight.copy_(1.0 + 0.2 * torch.randn(weight.shape, generator=rng))
                if isinstance(bias, torch.nn.Parameter):
                    bias.copy_(0.1 * torch.randn(bias.shape, generator=rng))
                if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                    m.running_mean.copy_(0.1 * torch.randn(m.running_mean.shape, generator=rng))
                    m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=rng))
            elif isinstance(bias, torch.nn.Parameter):
                bias.copy_(0.05 * torch.randn(bias.shape, generator=rng))


def conv_init(model: torch.nn.Module, gain: float, rng: torch.Generator) -> None:
    """Vocoder convolutions drawn N(0, gain / sqrt(fan_in)) instead of transformers' N(0, 0.02): at
    0.02 the signal shrinks through the stack to a near-constant waveform of ~1e-4, where a trained
    vocoder keeps it of order 1 (and an error relative to a vanishing output means nothing)."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.ConvTranspose1d):
                fan_in = m.in_channels // m.groups * m.kernel_size[0] / m.stride[0]
            elif isinstance(m, torch.nn.Conv1d):
                fan_in = m.in_channels // m.groups * m.kernel_size[0]
            else:
                continue
            weight = m.weight
            if isinstance(weight, torch.nn.Parameter):
                weight.copy_(torch.randn(weight.shape, generator=rng) * (gain / fan_in ** 0.5))


def _eval(model: torch.nn.Module) -> torch.nn.Module:
    perturb(model, torch.Generator().manual_seed(SEED + 1))
    return model.eval()


# Attention models: weights drawn N(0, 0.1) instead of the default 0.02, so that attention scores
# are not all near zero (softmax near uniform would hide errors in the scores).
INIT = 0.1


def build_bert():
    from transformers import BertConfig, BertModel
    cfg = BertConfig(vocab_size=1000, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=128, max_position_embeddings=64, type_vocab_size=2,
                     initializer_range=INIT)
    return _eval(BertModel(cfg))


def build_vit():
    from transformers import ViTConfig, ViTModel
    cfg = ViTConfig(image_size=32, patch_size=8, num_channels=3, hidden_size=64, num_hidden_layers=2,
                    num_attention_heads=4, intermediate_size=128, initializer_range=INIT)
    return _eval(ViTModel(cfg))


def build_whisper_encoder():
    from transformers import WhisperConfig
    from transformers.models.whisper.modeling_whisper import WhisperEncoder
    cfg = WhisperConfig(num_mel_bins=80, d_model=64, encoder_layers=2, encoder_attention_heads=4,
                        encoder_ffn_dim=128, decoder_layers=1, decoder_attention_heads=4, decoder_ffn_dim=128,
                        max_source_positions=50, max_target_positions=32, vocab_size=500, init_std=INIT)
    return _eval(WhisperEncoder(cfg))


def build_qwen2():
    from transformers import Qwen2Config, Qwen2ForCausalLM
    cfg = Qwen2Config(vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                      use_cache=False, tie_word_embeddings=False, initializer_range=INIT)
    return _eval(Qwen2ForCausalLM(cfg))


def build_llama():
    from transformers import LlamaConfig, LlamaForCausalLM
    cfg = LlamaConfig(vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                      use_cache=False, tie_word_embeddings=False, initializer_range=INIT)
    return _eval(LlamaForCausalLM(cfg))


def build_wav2vec2():
    from transformers import Wav2Vec2Config, Wav2Vec2Model
    cfg = Wav2Vec2Config(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
                         conv_dim=(32, 32, 32), conv_stride=(5, 2, 2), conv_kernel=(10, 3, 3),
                         feat_extract_norm="group", do_stable_layer_norm=False,
                         num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4,
                         mask_time_prob=0.0, apply_spec_augment=False, initializer_range=INIT)
    return _eval(Wav2Vec2Model(cfg))


def build_bigvgan(full_depth: bool):
    """Qwen2.5-Omni token2wav BigVGAN at reduced width: the shipped topology (6 upsamplings, 3
    residual blocks each, 1,536 channels) with ``full_depth``, else 3 upsamplings of 2 blocks."""
    def build():
        from transformers.models.qwen2_5_omni.configuration_qwen2_5_omni import Qwen2_5OmniBigVGANConfig
        from transformers.models.qwen2_5_omni.modeling_qwen2_5_omni import Qwen2_5OmniToken2WavBigVGANModel
        if full_depth:
            cfg = Qwen2_5OmniBigVGANConfig(mel_dim=80, upsample_initial_channel=64)
        else:
            cfg = Qwen2_5OmniBigVGANConfig(mel_dim=80, upsample_initial_channel=32, resblock_kernel_sizes=[3, 7],
                                           resblock_dilation_sizes=[[1, 3, 5], [1, 3, 5]],
                                           upsample_rates=[5, 3, 2], upsample_kernel_sizes=[11, 7, 4])
        model = Qwen2_5OmniToken2WavBigVGANModel(cfg)
        # SnakeBeta's log-scale alpha/beta start at 0 (alpha = beta = 1); trained ones are spread out.
        rng = torch.Generator().manual_seed(SEED + 2)
        with torch.no_grad():
            for name, p in model.named_parameters():
                if name.endswith(".alpha") or name.endswith(".beta"):
                    p.copy_(0.5 * torch.randn(p.shape, generator=rng))
        conv_init(model, 0.6, rng)
        return _eval(model)
    build.returns_tensor = True
    return build


def build_dac_decoder():
    from transformers import DacConfig, DacModel
    cfg = DacConfig(encoder_hidden_size=16, downsampling_ratios=[2, 4], decoder_hidden_size=64,
                    upsampling_ratios=[4, 2], hidden_size=32, n_codebooks=2, codebook_size=64,
                    codebook_dim=8, sampling_rate=16000)
    model = DacModel(cfg)
    rng = torch.Generator().manual_seed(SEED + 3)
    with torch.no_grad():
        for name, p in model.decoder.named_parameters():
            if name.endswith(".alpha"):
                p.copy_(torch.exp(0.5 * torch.randn(p.shape, generator=rng)))
    conv_init(model.decoder, 0.6, rng)
    return _eval(model.decoder)


build_dac_decoder.returns_tensor = True


def build_speecht5_hifigan():
    from transformers import SpeechT5HifiGan, SpeechT5HifiGanConfig
    cfg = SpeechT5HifiGanConfig(model_in_dim=80, upsample_initial_channel=32, upsample_rates=[4, 4],
                                upsample_kernel_sizes=[8, 8], resblock_kernel_sizes=[3, 7],
                                resblock_dilation_sizes=[[1, 3, 5], [1, 3, 5]], normalize_before=True)
    model = SpeechT5HifiGan(cfg)
    rng = torch.Generator().manual_seed(SEED + 4)
    with torch.no_grad():
        model.mean.copy_(torch.randn(model.mean.shape, generator=rng) - 5.0)
        model.scale.copy_(1.0 + torch.rand(model.scale.shape, generator=rng))
    conv_init(model, 0.7, rng)
    return _eval(model)


build_speecht5_hifigan.returns_tensor = True


def build_convnext(layer_scale_like_trained: bool):
    def build():
        from transformers import ConvNextConfig, ConvNextModel
        cfg = ConvNextConfig(num_channels=3, num_stages=3, hidden_sizes=[16, 32, 48], depths=[1, 2, 1], image_size=32,
                             layer_scale_init_value=1e-6)
        model = ConvNextModel(cfg)
        if layer_scale_like_trained:
            rng = torch.Generator().manual_seed(SEED + 5)
            with torch.no_grad():
                for name, p in model.named_parameters():
                    if name.endswith("layer_scale_parameter"):
                        p.copy_(0.05 + 0.45 * torch.rand(p.shape, generator=rng))
        return _eval(model)
    return build


def build_mobilenet_v2():
    from transformers import MobileNetV2Config, MobileNetV2Model
    cfg = MobileNetV2Config(num_channels=3, image_size=64, depth_multiplier=0.35, finegrained_output=False)
    return _eval(MobileNetV2Model(cfg))


def build_yolos():
    from transformers import YolosConfig, YolosForObjectDetection
    cfg = YolosConfig(image_size=[32, 32], patch_size=8, num_channels=3, hidden_size=64, num_hidden_layers=2,
                      num_attention_heads=4, intermediate_size=128, num_detection_tokens=10, num_labels=5,
                      use_mid_position_embeddings=False, initializer_range=INIT)
    return _eval(YolosForObjectDetection(cfg))


def build_encodec_decoder():
    from transformers import EncodecConfig, EncodecModel
    cfg = EncodecConfig(hidden_size=32, num_filters=8, num_residual_layers=1, upsampling_ratios=[4, 2],
                        num_lstm_layers=1, codebook_size=64, target_bandwidths=[1.5], sampling_rate=8000)
    return _eval(EncodecModel(cfg).decoder)


build_encodec_decoder.returns_tensor = True


def build_efficientnet():
    from transformers import EfficientNetConfig, EfficientNetModel
    cfg = EfficientNetConfig(image_size=64, width_coefficient=0.25, depth_coefficient=0.5, hidden_dim=320)
    return _eval(EfficientNetModel(cfg))


def build_resnet():
    from transformers import ResNetConfig, ResNetModel
    cfg = ResNetConfig(embedding_size=16, hidden_sizes=[16, 32, 64, 128], depths=[1, 1, 1, 1],
                       layer_type="bottleneck")
    return _eval(ResNetModel(cfg))


def _ids(name, length, vocab):
    return {"name": name, "shape": [1, length], "dtype": "int64", "range": [0, vocab]}


def _ones(name, length):
    return {"name": name, "shape": [1, length], "dtype": "int64", "kind": "ones"}


def _floats(name, shape, lo=-1.0, hi=1.0):
    return {"name": name, "shape": list(shape), "dtype": "float32", "range": [lo, hi]}


BOTH = ("legacy", "dynamo")
SPECS = [
    Spec("bert", "transformers.BertModel", BOTH, ["attention", "layernorm", "gelu", "embedding"],
         build_bert, [_ids("input_ids", 16, 1000), _ones("attention_mask", 16)],
         ["last_hidden_state", "pooler_output"]),
    Spec("vit", "transformers.ViTModel", BOTH, ["attention", "layernorm", "gelu", "patch_conv"],
         build_vit, [_floats("pixel_values", (1, 3, 32, 32))], ["last_hidden_state", "pooler_output"]),
    Spec("whisper_encoder", "transformers.models.whisper.modeling_whisper.WhisperEncoder", BOTH,
         ["attention", "layernorm", "gelu", "conv1d"],
         build_whisper_encoder, [_floats("input_features", (1, 80, 100))], ["last_hidden_state"],
         notes="max_source_positions=50, so input_features must have 2*50 = 100 frames"),
    Spec("qwen2", "transformers.Qwen2ForCausalLM", ("dynamo", "legacy"),
         ["attention", "causal_mask", "gqa", "rmsnorm", "rope", "silu"],
         build_qwen2, [_ids("input_ids", 16, 512), _ones("attention_mask", 16)], ["logits"],
         notes="causal mask built in the graph from attention_mask: masked scores hold float32 min, "
               "which is -inf at fp16"),
    Spec("llama", "transformers.LlamaForCausalLM", ("legacy",),
         ["attention", "causal_mask", "gqa", "rmsnorm", "rope", "silu"],
         build_llama, [_ids("input_ids", 16, 512), _ones("attention_mask", 16)], ["logits"],
         notes="causal mask built in the graph from attention_mask: masked scores hold float32 min, "
               "which is -inf at fp16"),
    Spec("wav2vec2", "transformers.Wav2Vec2Model", ("legacy", "dynamo"),
         ["groupnorm", "layernorm", "attention", "conv1d", "grouped_conv", "gelu", "weight_norm"],
         build_wav2vec2, [_floats("input_values", (1, 1600))], ["last_hidden_state", "extract_features"]),
    Spec("qwen25omni_bigvgan",
         "transformers.models.qwen2_5_omni.modeling_qwen2_5_omni.Qwen2_5OmniToken2WavBigVGANModel", ("legacy", "dynamo"),
         ["convtranspose1d", "snake", "depthwise_convtranspose1d", "depthwise_conv1d", "replicate_pad",
          "residual", "clip"],
         build_bigvgan(False), [_floats("mel_spectrogram", (1, 80, 16), -10.0, 1.0)], ["waveform"],
         notes="config: mel 80, channels 32, upsample [5,3,2] / kernels [11,7,4], resblock kernels [3,7]; "
               "SnakeBeta log-alpha/beta drawn N(0, 0.5); convs N(0, 0.6/sqrt(fan_in)); "
               "input is a natural-log mel in [-10, 1]; the model squeezes its output to 1-D",
         exporter_notes={"legacy": "the legacy exporter cannot type F.pad(mode='replicate') (onnx::Pad edge), so "
                                   "the anti-aliasing filter self.filter.expand(channels, -1, -1), with channels read "
                                   "from that shape, has an unknown shape and conv export refuses it; substitutes: "
                                   "this model with the dynamo exporter, and dac_decoder_legacy (Snake + "
                                   "ConvTranspose1d, legacy)"}),
    Spec("qwen25omni_bigvgan_fulldepth",
         "transformers.models.qwen2_5_omni.modeling_qwen2_5_omni.Qwen2_5OmniToken2WavBigVGANModel", ("dynamo",),
         ["convtranspose1d", "snake", "depthwise_convtranspose1d", "depthwise_conv1d", "replicate_pad",
          "residual", "clip", "deep"],
         build_bigvgan(True), [_floats("mel_spectrogram", (1, 80, 16), -10.0, 1.0)], ["waveform"],
         notes="the shipped topology (upsample [5,3,2,2,2,2] / kernels [11,7,4,4,4,4], resblock kernels "
               "[3,7,11] x dilations [1,3,5]: 18 AMP blocks, 108 SnakeBeta) at 64 initial channels instead "
               "of 1,536: fp16 error accumulates through the depth as in the full model. SnakeBeta "
               "log-alpha/beta drawn N(0, 0.5); convs N(0, 0.6/sqrt(fan_in)) (waveform peak ~0.5); input a "
               "natural-log mel in [-10, 1]; output squeezed to 1-D"),
    Spec("dac_decoder", "transformers.models.dac.modeling_dac.DacDecoder", ("legacy",),
         ["convtranspose1d", "snake", "residual", "tanh"],
         build_dac_decoder, [_floats("hidden_state", (1, 32, 16))], ["audio"],
         notes="Snake1d alpha drawn exp(N(0, 0.5)); convs N(0, 0.6/sqrt(fan_in)) (audio peak ~0.6)"),
    Spec("speecht5_hifigan", "transformers.SpeechT5HifiGan", ("legacy",),
         ["convtranspose1d", "leaky_relu", "residual", "normalize"],
         build_speecht5_hifigan, [_floats("spectrogram", (1, 16, 80), -10.0, 1.0)], ["waveform"],
         notes="HiFi-GAN has leaky ReLU, not Snake; normalize_before with random mean/scale; convs "
               "N(0, 0.7/sqrt(fan_in)) (waveform peak ~0.5)"),
    Spec("encodec_decoder", "transformers.models.encodec.modeling_encodec.EncodecDecoder", ("legacy", "dynamo"),
         ["convtranspose1d", "lstm", "weight_norm", "elu", "reflect_pad", "residual"],
         build_encodec_decoder, [_floats("hidden_states", (1, 32, 16))], ["audio"],
         notes="EnCodec's decoder alone (input: quantized embeddings); upsampling [4, 2], one LSTM layer",
         exporter_notes={"dynamo": "torch.export cannot guard the data-dependent `if length <= max_pad` in "
                                   "EncodecConv1d._pad1d (reflect padding); the legacy export stands in"}),
    Spec("convnext", "transformers.ConvNextModel", BOTH,
         ["depthwise", "layer_scale", "layernorm", "layernorm_channels_first", "gelu"],
         build_convnext(False), [_floats("pixel_values", (1, 3, 32, 32))], ["last_hidden_state", "pooler_output"],
         notes="layer scale at its initial value 1e-6 (subnormal in fp16)"),
    Spec("convnext_scaled", "transformers.ConvNextModel", ("legacy",),
         ["depthwise", "layer_scale", "layernorm", "layernorm_channels_first", "gelu"],
         build_convnext(True), [_floats("pixel_values", (1, 3, 32, 32))], ["last_hidden_state", "pooler_output"],
         notes="layer scale drawn U(0.05, 0.5), like a trained model's"),
    Spec("mobilenet_v2", "transformers.MobileNetV2Model", ("legacy", "dynamo"),
         ["depthwise", "batchnorm", "relu6", "residual"],
         build_mobilenet_v2, [_floats("pixel_values", (1, 3, 64, 64))], ["last_hidden_state", "pooler_output"],
         notes="depth multiplier 0.35; BatchNorm running statistics perturbed (folded into the convs on export)",
         exporter_notes={"legacy": "TF-style 'same' padding is computed from tensor shapes in the graph (Shape, "
                                   "Gather, Pad... around every conv), and the outputs are declared with symbolic "
                                   "dims although the input is static"}),
    Spec("efficientnet", "transformers.EfficientNetModel", ("legacy", "dynamo"),
         ["depthwise", "squeeze_excitation", "swish", "batchnorm", "residual"],
         build_efficientnet, [_floats("pixel_values", (1, 3, 64, 64))], ["last_hidden_state", "pooler_output"],
         notes="width 0.25, depth 0.5"),
    Spec("resnet", "transformers.ResNetModel", ("dynamo",),
         ["batchnorm", "maxpool", "residual", "bottleneck"],
         build_resnet, [_floats("pixel_values", (1, 3, 64, 64))], ["last_hidden_state", "pooler_output"]),
    Spec("yolos", "transformers.YolosForObjectDetection", ("legacy", "dynamo"),
         ["detection", "attention", "layernorm", "sigmoid"],
         build_yolos, [_floats("pixel_values", (1, 3, 32, 32))], ["logits", "pred_boxes"],
         notes="10 detection tokens, 5 labels",
         exporter_notes={"legacy": "position embeddings interpolated in the graph (bicubic Resize)",
                         "dynamo": "position-embedding interpolation folded to constants (no Resize)"}),
]


# ---- export ---------------------------------------------------------------------------------------

def example_args(spec: Spec) -> tuple:
    feeds = corpus.make_feeds({"inputs": spec.inputs}, seed=SEED)
    return tuple(torch.from_numpy(feeds[i["name"]]) for i in spec.inputs)


def export_one(spec: Spec, exporter: str, out_dir: Path) -> dict:
    torch.manual_seed(SEED)
    model = spec.build()
    input_names = [i["name"] for i in spec.inputs]
    # The vocoders return one tensor: exported unwrapped, so node names are the model's own (/ups.0/...).
    direct = getattr(spec.build, "returns_tensor", False)
    wrapped = model if direct else Outputs(model, input_names, spec.outputs)
    args = example_args(spec)
    path = out_dir / f"{spec.name}_{exporter}.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with torch.no_grad():
            expected = wrapped(*args)
            if exporter == "legacy":
                torch.onnx.export(wrapped, args, str(path), dynamo=False, opset_version=OPSET,
                                  input_names=input_names, output_names=spec.outputs, do_constant_folding=True)
            else:
                program = torch.onnx.export(wrapped, args, dynamo=True, opset_version=OPSET,
                                            input_names=input_names, output_names=spec.outputs,
                                            external_data=False)
                program.save(str(path), external_data=False)
                strip_stack_traces(path)
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    expected = expected if isinstance(expected, tuple) else (expected,)
    agreement = check_with_onnxruntime(path, args, input_names, [e.numpy() for e in expected])
    fp16_err = torch_fp16_rel_err(spec, args, expected)
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise RuntimeError(f"{path.name} is {size} bytes, over the {MAX_FILE_BYTES} limit")
    domains = {o.domain or "ai.onnx": o.version for o in proto.opset_import}
    return {
        "name": f"{spec.name}_{exporter}",
        "file": path.name,
        "source_class": spec.source_class,
        "exporter": exporter,
        "opset": domains.get("ai.onnx"),
        "opset_imports": domains,
        "covers": spec.covers + (["resize"] if any(n.op_type == "Resize" for n in proto.graph.node) else []),
        "inputs": spec.inputs,
        "outputs": [{"name": o.name, "shape": _dims(o), "dtype": _dtype(o)} for o in proto.graph.output],
        "nodes": len(proto.graph.node),
        "op_types": sorted({n.op_type for n in proto.graph.node}),
        "parameters": int(sum(p.numel() for p in model.parameters())),
        "bytes": size,
        "onnxruntime_vs_torch_rel_err": agreement,
        "torch_fp16_rel_err": fp16_err,
        "notes": " ".join(n for n in (spec.notes, spec.exporter_notes.get(exporter, "")) if n),
    }


def torch_fp16_rel_err(spec: Spec, args: tuple, expected: tuple) -> dict:
    """The error fp16 itself brings: the model, built afresh with the same seed, run by torch in
    float16 on CPU; per output, max|fp16 - fp32| / max|fp32|. A yardstick for an fp16 build's final
    outputs. (Built afresh: the legacy exporter's tracing leaves the exported module altered.)"""
    torch.manual_seed(SEED)
    model = spec.build()
    if not getattr(spec.build, "returns_tensor", False):
        model = Outputs(model, [i["name"] for i in spec.inputs], spec.outputs)
    with torch.no_grad():
        got = model.half()(*[a.half() if a.is_floating_point() else a for a in args])
    got = got if isinstance(got, tuple) else (got,)
    return {name: float((g.float() - e).abs().max() / e.abs().max())
            for name, g, e in zip(spec.outputs, got, expected)}


def strip_stack_traces(path: Path) -> None:
    """Drop the dynamo exporter's per-node ``pkg.torch.onnx.stack_trace`` metadata: source paths of
    the exporting machine, about 30% of a small model's file. The other metadata (namespace, name
    scopes, class hierarchy, fx node) stays as exported."""
    proto = onnx.load(str(path))
    for node in proto.graph.node:
        kept = [p for p in node.metadata_props if p.key != "pkg.torch.onnx.stack_trace"]
        del node.metadata_props[:]
        node.metadata_props.extend(kept)
    onnx.save(proto, str(path))


def check_with_onnxruntime(path: Path, args: tuple, input_names: list, expected: list) -> float:
    """Max over outputs of max|ort - torch| / max|torch|; raises if the export is plainly wrong."""
    import onnxruntime as ort
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {n: a.numpy() for n, a in zip(input_names, args)})
    worst = 0.0
    for g, e in zip(got, expected):
        scale = float(np.max(np.abs(e))) or 1.0
        worst = max(worst, float(np.max(np.abs(g.astype(np.float64) - e))) / scale)
    if worst > 1e-4:
        raise RuntimeError(f"{path.name}: onnxruntime disagrees with torch (rel err {worst:.3g})")
    return worst


def failure_reason(exc: BaseException) -> str:
    """The first line of an export error; for torch.export's, the line of its exception summary."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    summary = [i for i, line in enumerate(lines) if line.startswith("## Exception summary")]
    head = lines[summary[0] + 1] if summary and summary[0] + 1 < len(lines) else (lines[0] if lines else "")
    return f"{type(exc).__name__}: {head[:400]}"


def _dims(vi) -> list:
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in vi.type.tensor_type.shape.dim]


def _dtype(vi) -> str:
    return str(onnx.helper.tensor_dtype_to_np_dtype(vi.type.tensor_type.elem_type))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("only", nargs="*", help="export only models whose name starts with one of these")
    parser.add_argument("-o", "--out", type=Path, default=HERE)
    opts = parser.parse_args(argv)
    opts.out.mkdir(parents=True, exist_ok=True)
    manifest_path = opts.out / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {"models": [], "failed": []}
    models = {m["name"]: m for m in manifest["models"]}
    failed = {f["name"]: f for f in manifest.get("failed", [])}
    for spec in SPECS:
        for exporter in spec.exporters:
            name = f"{spec.name}_{exporter}"
            if opts.only and not any(name.startswith(p) for p in opts.only):
                continue
            print(f"exporting {name} ...", flush=True)
            try:
                models[name] = export_one(spec, exporter, opts.out)
                failed.pop(name, None)
                print(f"  ok: {models[name]['nodes']} nodes, {models[name]['bytes']} bytes, "
                      f"ort vs torch {models[name]['onnxruntime_vs_torch_rel_err']:.2e}", flush=True)
            except Exception as exc:  # recorded in the manifest: an export failure is a finding
                models.pop(name, None)
                reason = failure_reason(exc)
                failed[name] = {"name": name, "source_class": spec.source_class, "exporter": exporter,
                                "reason": reason, "notes": spec.exporter_notes.get(exporter, "")}
                print(f"  FAILED: {reason}", flush=True)
    order = [f"{s.name}_{e}" for s in SPECS for e in s.exporters]
    manifest = {
        "opset": OPSET,
        "seed": SEED,
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "onnx": onnx.__version__, **_optional_versions()},
        "weights": "transformers' initialisation under torch.manual_seed(0), with initializer_range 0.1 for the "
                   "attention models; every bias drawn N(0, 0.05); LayerNorm/GroupNorm/BatchNorm/RMSNorm weights "
                   "1 + N(0, 0.2), biases N(0, 0.1), running means N(0, 0.1), variances U(0.5, 1.5); "
                   "per-model changes in notes",
        "dynamo_metadata": "node metadata pkg.torch.onnx.stack_trace removed (exporting machine's source paths); "
                           "the rest as exported",
        "models": [models[n] for n in order if n in models],
        "failed": [failed[n] for n in order if n in failed],
    }
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"wrote {manifest_path}: {len(manifest['models'])} models, {len(manifest['failed'])} failed")
    return 0


def _optional_versions() -> dict:
    out = {}
    for mod in ("onnxscript", "onnxruntime"):
        try:
            out[mod] = __import__(mod).__version__
        except ImportError:
            pass
    return out


if __name__ == "__main__":
    sys.exit(main())
