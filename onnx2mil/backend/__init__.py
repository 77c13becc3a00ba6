"""Graph walk, build context, registry, pass pipeline & save, interpreter, runtimes, validation."""
