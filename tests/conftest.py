import logging

# coremltools warns at import that its macOS-only native proxies are absent; that is expected here.
logging.getLogger("coremltools").setLevel(logging.ERROR)


def pytest_collection_modifyitems(config, items):
    """Tests marked ``slow`` run only when the -m expression names 'slow' (as in tests/mil_op_suite)."""
    if "slow" in (config.getoption("-m") or ""):
        return
    slow = [item for item in items if item.get_closest_marker("slow")]
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = [item for item in items if not item.get_closest_marker("slow")]
