"""A numpy interpreter for MIL programs: runs a saved .mlpackage's program on any platform.

``run_program(prog, inputs)`` executes a pymil Program; importing this package registers every
kernel (``kernels/``), one module per MIL op family.
"""
from .core import InterpreterError, run_block, run_program  # noqa: F401
from . import kernels  # noqa: F401,E402  (fills the kernel registry)

__all__ = ["run_program", "run_block", "InterpreterError"]
