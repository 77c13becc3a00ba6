import logging

# coremltools warns at import that its macOS-only native proxies are absent; that is expected here.
logging.getLogger("coremltools").setLevel(logging.ERROR)
