"""The converter: ONNX in, a saved ML Program out. Imports nothing from runtime/, interpreter/ or validation/."""
