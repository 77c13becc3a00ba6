"""GridSample (opsets 16, 20): bilinear/nearest/cubic, 2-D and 3-D, zeros/border/reflection
padding, align_corners, grid points outside [-1, 1]."""
from itertools import product

import coremltools as ct

from harness import OpCase, rand


def grid_sample(id, opset=20, **attrs):
    return OpCase(f"gridsample_{id}", "GridSample",
                  {"X": rand(2, 3, 5, 4), "G": rand(2, 6, 7, 2, seed=3, low=-1.3, high=1.3)}, attrs, opset=opset)


CASES = [
    grid_sample(f"{mode}_{pad}_align{align}", mode=mode, padding_mode=pad, align_corners=align)
    for mode, pad, align in product(("linear", "nearest"), ("zeros", "border", "reflection"), (0, 1))
] + [
    grid_sample("opset16_bilinear", opset=16, mode="bilinear"),
    grid_sample("defaults", opset=16),
]


def volume(id, **attrs):
    return OpCase(f"gridsample_{id}", "GridSample",
                  {"X": rand(2, 3, 3, 4, 5), "G": rand(2, 2, 3, 4, 3, seed=3, low=-1.2, high=1.2)}, attrs, opset=20,
                  target=ct.target.iOS16)


CASES += [
    OpCase(f"gridsample_cubic_align{align}", "GridSample",
           {"X": rand(2, 3, 5, 4), "G": rand(2, 6, 7, 2, seed=3, low=-1.3, high=1.3)},
           {"mode": "cubic", "align_corners": align}, opset=20, target=ct.target.iOS16)
    for align in (0, 1)
] + [
    volume(f"volume_{mode}_align{align}", mode=mode, align_corners=align)
    for mode, align in product(("linear", "nearest"), (0, 1))
] + [
    OpCase(f"gridsample_cubic_{pad}_align{align}", "GridSample",
           {"X": rand(1, 2, 5, 4), "G": rand(1, 6, 7, 2, seed=3, low=-1.6, high=1.6)},
           {"mode": "cubic", "padding_mode": pad, "align_corners": align}, opset=20, target=ct.target.iOS16)
    for pad, align in product(("reflection",), (0, 1))
] + [
    volume(f"volume_{mode}_{pad}_align{align}", mode=mode, padding_mode=pad, align_corners=align)
    for mode, pad, align in product(("linear", "nearest"), ("border", "reflection"), (0, 1))
]

REFUSED = [
    (OpCase("gridsample_cubic_border_refused", "GridSample", {"X": rand(1, 1, 4, 4), "G": rand(1, 2, 2, 2)},
            {"mode": "cubic", "padding_mode": "border"}, opset=20, target=ct.target.iOS16), "results differ"),
    (OpCase("gridsample_volume_ios15_refused", "GridSample", {"X": rand(1, 1, 2, 3, 4), "G": rand(1, 2, 2, 2, 3)},
            opset=20), "iOS16"),
]
