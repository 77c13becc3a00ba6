"""The proof tools: validate, isolate, lint, compress — against onnxruntime."""
