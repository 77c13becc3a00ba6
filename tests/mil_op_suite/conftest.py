"""Runs coremltools' own MIL op tests with CoreML's predictions replaced by our interpreter.

See ``test_coremltools_ops.py`` (what is collected) and ``routing.py`` (how predictions run).
Backends: ``mlprogram`` in fp16 and fp32, every opset the test modules target.
``--mil-op-suite-results=PATH`` writes every case's outcome as JSON; ``report.py`` turns it into
``docs/mil_op_suite.md``.
"""
from __future__ import annotations

import os
import sys

# coremltools reads these when its test requirements module is first imported.
if "coremltools.converters.mil.testing_reqs" in sys.modules:
    raise RuntimeError("tests/mil_op_suite must set coremltools' test backends before they are imported")
os.environ["PYMIL_TEST_TARGETS"] = "mlprogram"
os.environ["INCLUDE_MIL_FP32_UNIT_TESTS"] = "1"

import gc  # noqa: E402
import json  # noqa: E402
from pathlib import Path  # noqa: E402

import coremltools as ct  # noqa: E402
import pytest  # noqa: E402
from coremltools.converters.mil.testing_reqs import BackendConfig  # noqa: E402

from mil_op_suite import report, routing  # noqa: E402
from mil_op_suite.test_coremltools_ops import CoremltoolsOpTests, in_fast_subset  # noqa: E402

ANCHOR = Path(__file__).with_name("test_coremltools_ops.py")
RESULTS_OPTION = "--mil-op-suite-results"
FULL_OPTION = "--mil-op-suite-full"


def pytest_addoption(parser):
    parser.addoption(RESULTS_OPTION, default=None, metavar="PATH",
                     help="write the outcome of every coremltools MIL op test case to PATH (JSON)")
    parser.addoption(FULL_OPTION, action="store_true", default=False,
                     help="run every selected coremltools MIL op test, not only the fast subset "
                          "(also implied by a -m expression naming 'slow')")


def pytest_configure(config):
    routing.route_predictions_through_interpreter()
    config.addinivalue_line("markers", "mil_op_suite: a coremltools MIL op test run through the onnx2mil interpreter")
    if not config.pluginmanager.has_plugin("mil_op_suite"):
        config.pluginmanager.register(SuitePlugin(config), "mil_op_suite")


def pytest_pycollect_makemodule(module_path, parent):
    if Path(module_path) == ANCHOR:
        return CoremltoolsOpTests.from_parent(parent, path=Path(module_path))
    return None


class SuitePlugin:
    """Global hooks: the collected cases live outside this directory, beyond conftest scope."""

    def __init__(self, config):
        self.config = config
        self.records: dict[str, dict] = {}

    @staticmethod
    def _is_case(nodeid: str) -> bool:
        return nodeid.split("::", 1)[0].endswith("mil_op_suite/test_coremltools_ops.py") and nodeid.count("::") >= 2

    def pytest_make_parametrize_id(self, config, val, argname):
        if isinstance(val, BackendConfig):
            return f"{val.backend}-{val.precision}-{val.opset_version.name}"
        if isinstance(val, ct.ComputeUnit):
            return val.name
        return None

    def pytest_collection_modifyitems(self, config, items):
        full = config.getoption(FULL_OPTION, default=False) or "slow" in (config.getoption("-m") or "")
        kept, deselected = [], []
        for item in items:
            if self._is_case(item.nodeid):
                item.add_marker(pytest.mark.mil_op_suite)
                if not in_fast_subset(item):
                    item.add_marker(pytest.mark.slow)
                    if not full:
                        deselected.append(item)
                        continue
            kept.append(item)
        if deselected:
            config.hook.pytest_deselected(items=deselected)
            items[:] = kept

    def pytest_collection_finish(self, session):
        # ct.convert ends with a full gc.collect(); over ~10k collected cases that walk costs
        # ~0.4 s per conversion. Collected objects live for the whole session: keep gc off them.
        gc.freeze()

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item, call):
        outcome = yield
        if self._is_case(item.nodeid) and call.when in ("setup", "call"):
            for name, count in routing.take_counts().items():
                outcome.get_result().user_properties.append((f"mil_op_suite_{name}", count))

    def pytest_runtest_logreport(self, report):
        if self._is_case(report.nodeid):
            report_record(self.records, report)

    def pytest_terminal_summary(self, terminalreporter, config):
        if hasattr(config, "workerinput") or not self.records:
            return
        records = sorted(self.records.values(), key=lambda r: r["nodeid"])
        summary = report.summarize(records)
        terminalreporter.write_sep("=", "coremltools MIL op suite through the onnx2mil interpreter")
        for line in report.summary_lines(summary):
            terminalreporter.write_line(line)
        path = config.getoption(RESULTS_OPTION, default=None)
        if path:
            Path(path).write_text(json.dumps({"summary": summary, "records": records}, indent=1))
            terminalreporter.write_line(f"results written to {path}")


def report_record(records: dict, rep) -> None:
    record = records.setdefault(rep.nodeid, {
        "nodeid": rep.nodeid, "module": rep.nodeid.split("::")[1], "outcome": "passed",
        "predictions": 0, "comparison_failures": 0, "reason": "", "duration": 0.0})
    record["duration"] += rep.duration
    # user_properties accumulate over setup/call/teardown: the last report holds the totals
    for name in ("predictions", "comparison_failures"):
        record[name] = max(record[name], sum(v for k, v in rep.user_properties if k == f"mil_op_suite_{name}"))
    outcome = report.case_outcome(rep)
    if outcome is not None and report.OUTCOME_RANK[outcome] > report.OUTCOME_RANK[record["outcome"]]:
        record["outcome"] = outcome
        record["reason"] = report.reason_of(rep)
