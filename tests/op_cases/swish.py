"""Swish (opset 24): alpha 1 (MIL silu) and other alphas. SwiGLU (opset 28) has no onnxruntime
kernel yet; ONNX's own SwiGLU cases check it (python -m onnx2mil.conformance -k swiglu)."""
from harness import OpCase, rand

CASES = [
    OpCase("swish_alpha1", "Swish", {"X": rand(2, 3, 5, low=-4, high=4)}, {"alpha": 1.0}, opset=24),
    OpCase("swish_default_alpha", "Swish", {"X": rand(7, low=-4, high=4)}, opset=24),
    OpCase("swish_alpha_half", "Swish", {"X": rand(3, 4, low=-4, high=4)}, {"alpha": 0.5}, opset=24),
]
