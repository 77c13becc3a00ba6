"""MeanVarianceNormalization over the default axes [0, 2, 3] and custom ones. The default is spelled
out: onnx's strict shape inference fails on the function body when ``axes`` is omitted."""
from harness import rand

from .group_norm import SameShapeCase


def mvn(id, shape, opset=13, **attrs):
    return SameShapeCase(f"meanvariancenormalization_{id}", "MeanVarianceNormalization",
                  {"X": rand(*shape, low=-2, high=3)}, attrs, opset=opset)


CASES = [
    mvn("default_axes", (2, 3, 4, 5), axes=[0, 2, 3]),
    mvn("channel_axes", (2, 16, 3, 4), axes=[1]),
    mvn("last_axes_opset9", (3, 4, 6), axes=[-1, -2], opset=9),
]
