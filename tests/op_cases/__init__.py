"""Builder test cases as data. Each module defines CASES (harness.OpCase list) and may define
REFUSED ([(case, words the refusal reason contains)]) and UNORDERED_CASES (cases whose outputs
ONNX leaves in an unspecified order: compared after sorting the last axis)."""
import importlib
import pkgutil


def _modules():
    return [importlib.import_module(f"{__name__}.{m.name}") for m in pkgutil.iter_modules(__path__)]


def all_cases():
    return [case for module in _modules() for case in module.CASES]


def all_refused():
    return [entry for module in _modules() for entry in getattr(module, "REFUSED", [])]


def unordered_ids():
    return {case.id for module in _modules() for case in getattr(module, "UNORDERED_CASES", [])}
