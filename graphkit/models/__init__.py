"""Built-in PyTorch model definitions (need the ``torch`` extra)."""
