"""The ways rf-bench runs a model, one module each: ``base`` (what every backend provides),
``registry`` (the backends by name and which run here), ``ort`` (ONNX Runtime, CPU or CUDA, timed
in the ``ort_worker`` process), ``torch_cuda`` (PyTorch eager or ``torch.compile`` in CUDA graphs)
and ``trt`` (a TensorRT engine, with what the files beside it say: :class:`~.trt.EngineInfo`)."""
