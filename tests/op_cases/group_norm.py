"""GroupNormalization opset 21 (per-channel scale/bias, stash_type). onnx.checker rejects opset 18-20
GroupNormalization as deprecated, so the loader refuses those models before any builder runs."""
import onnx.helper as oh

from harness import OpCase, rand


class SameShapeCase(OpCase):
    """A case whose output has X's type and shape, declared in the graph as an exporter would:
    onnx shape inference types nothing through some function-bodied ops (GroupNormalization,
    MeanVarianceNormalization without an explicit ``axes``)."""

    def model(self):
        model = super().model()
        x = model.graph.input[0].type.tensor_type
        del model.graph.output[:]
        model.graph.output.append(oh.make_tensor_value_info("out0", x.elem_type, [d.dim_value for d in x.shape.dim]))
        return model


def group_norm(id, shape, groups, opset=21, dynamic=(), **attrs):
    n = groups if opset < 21 else shape[1]
    weights = {"scale": rand(n, seed=1), "bias": rand(n, seed=2)}
    inputs = {"X": rand(*shape, low=-2, high=3)}
    for name in dynamic:
        inputs[name] = weights.pop(name)
    return SameShapeCase(f"groupnorm_{id}_opset{opset}", "GroupNormalization", inputs,
                  dict(num_groups=groups, **attrs), weights, input_order=["X", "scale", "bias"], opset=opset)


CASES = [
    group_norm("2d", (2, 6, 4, 5), 3),
    group_norm("1d_eps", (1, 8, 10), 4, epsilon=1e-2),
    group_norm("3d_one_group", (1, 4, 2, 3, 4), 1),
    group_norm("per_channel_groups", (2, 4, 3, 3), 4),
    group_norm("dynamic_scale_bias", (1, 6, 5, 5), 2, dynamic=("scale", "bias")),
]
