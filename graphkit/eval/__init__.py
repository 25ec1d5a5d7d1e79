"""Validation: the task's metric (``graphkit eval``) and speed (``graphkit bench``) per runner
and batch size, side by side with the reference, and the reports they write."""
