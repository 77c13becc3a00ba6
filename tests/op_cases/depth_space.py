"""DepthToSpace (DCR default, DCR/CRD modes) and SpaceToDepth."""
from harness import OpCase, rand

CASES = [
    OpCase("depthtospace_default_dcr", "DepthToSpace", {"X": rand(1, 8, 2, 3)}, {"blocksize": 2}, opset=1),
    OpCase("depthtospace_dcr", "DepthToSpace", {"X": rand(2, 18, 2, 2)}, {"blocksize": 3, "mode": "DCR"}, opset=11),
    OpCase("depthtospace_crd", "DepthToSpace", {"X": rand(1, 12, 3, 2)}, {"blocksize": 2, "mode": "CRD"}, opset=13),
    OpCase("spacetodepth", "SpaceToDepth", {"X": rand(1, 3, 4, 6)}, {"blocksize": 2}, opset=13),
    OpCase("spacetodepth_b3", "SpaceToDepth", {"X": rand(2, 2, 6, 3)}, {"blocksize": 3}, opset=1),
]

from op_cases.shape import SymbolicOpCase  # noqa: E402

CASES += [
    SymbolicOpCase("depthtospace_crd_symbolic", "DepthToSpace", {"X": rand(1, 8, 3, 2)},
                   {"blocksize": 2, "mode": "CRD"}, opset=13, symbolic={"X": {0: "n", 2: "h"}}),
    SymbolicOpCase("depthtospace_dcr_symbolic", "DepthToSpace", {"X": rand(1, 8, 3, 2)}, {"blocksize": 2},
                   opset=13, symbolic={"X": {0: "n", 3: "w"}}),
    SymbolicOpCase("spacetodepth_symbolic", "SpaceToDepth", {"X": rand(2, 3, 4, 6)}, {"blocksize": 2},
                   opset=13, symbolic={"X": {0: "n", 2: "h"}}),
]
