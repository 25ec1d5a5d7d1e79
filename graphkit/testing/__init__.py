"""Helpers for testing passes, and the sweep of graphkit's generic pipeline over many models."""
