"""PyTorch → ONNX (``onnx_export``), the onnx-graphsurgeon passes (``passes/``, one module each), the
pass pipeline for a model and precision (``prepare``), and ONNX Runtime runs (``onnxrt``)."""
