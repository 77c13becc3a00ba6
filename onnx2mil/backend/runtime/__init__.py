"""Running a converted model: predict() on the MIL interpreter, the emulated Neural Engine, CoreML (macOS)."""
