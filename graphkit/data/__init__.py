"""Data on disk: speech datasets and trial lists, audio and features, score and protocol files,
the batch files of an NPU host, and golden files. Nothing here runs a model."""
