"""Real ``torch.onnx.export`` outputs of small transformers models, committed with their manifest
(see README.md). ``manifest()``, ``models(tag)``, ``path(model)``, ``make_feeds(model, seed)``."""
from .corpus import MANIFEST, entry, make_feeds, manifest, models, path

__all__ = ["MANIFEST", "entry", "make_feeds", "manifest", "models", "path"]
