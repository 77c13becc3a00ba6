"""RMSNormalization (opset 23): axis (negative too), epsilon, scale shapes, constant or graph scale."""
from harness import OpCase, rand


def rms_norm(id, shape, axis=-1, dynamic_scale=False, scale_shape=None, **attrs):
    scale = {"W": rand(*(scale_shape or shape[axis % len(shape):]), seed=1)}
    inputs = {"X": rand(*shape, low=-2, high=3)}
    if dynamic_scale:
        inputs.update(scale)
        scale = {}
    return OpCase(f"rmsnorm_{id}", "RMSNormalization", inputs, dict(axis=axis, **attrs), scale,
                  input_order=["X", "W"], opset=23)


CASES = [
    rms_norm("last_axis", (2, 5, 8)),
    rms_norm("axis0", (3, 4), axis=0),
    rms_norm("axis1_epsilon", (2, 3, 4, 5), axis=1, epsilon=0.1),
    rms_norm("negative_axis", (2, 3, 6), axis=-2),
    rms_norm("broadcast_scale", (2, 3, 4), axis=1, scale_shape=(4,)),
    rms_norm("dynamic_scale", (2, 5, 8), dynamic_scale=True),
]

# fp16 model inputs are fp16 in Core ML from iOS16: stash_type=1 computes in fp32 between casts.
import coremltools as ct  # noqa: E402
import numpy as np  # noqa: E402

_fp16 = rms_norm("fp16_stash_fp32", (2, 4, 8))
_fp16.inputs = {k: v.astype(np.float16) for k, v in _fp16.inputs.items()}
_fp16.weights = {k: v.astype(np.float16) for k, v in _fp16.weights.items()}
_fp16.target = ct.target.iOS16
CASES.append(_fp16)
