"""PyTorch → ONNX export and the onnx-graphsurgeon passes."""
