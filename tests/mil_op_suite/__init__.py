"""coremltools' MIL op test suite, with CoreML's predictions replaced by the onnx2mil interpreter."""
