"""Inference backends (installed as ``graphkit.runners``)."""
