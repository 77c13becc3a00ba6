"""Builder test cases as data: each module defines CASES, a list of harness.OpCase."""
import importlib
import pkgutil


def all_cases():
    cases = []
    for module in pkgutil.iter_modules(__path__):
        cases += importlib.import_module(f"{__name__}.{module.name}").CASES
    return cases
