"""Reference models as ONNX generators (onnx.helper + seeded numpy weights); installed as onnx2mil.models."""
