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
