"""The model layer: onnx protos, onnx-graphsurgeon graphs, files and onnxruntime sessions.

- :mod:`~graphkit.ir.proto`: helpers on protos alone (inputs, dims, domains, skeletons, shape
  inference, the structural checker);
- :mod:`~graphkit.ir.graph`: helpers for passes, which edit ``gs.Graph``;
- :mod:`~graphkit.ir.io`: reading and writing models and files (clear errors in, atomic out);
- :mod:`~graphkit.ir.ort`: the one onnxruntime session builder;
- :mod:`~graphkit.ir.inspect`: ``graphkit inspect``'s description of a model.
"""
