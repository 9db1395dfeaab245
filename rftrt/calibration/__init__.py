"""INT8 calibration: image sources, activation ranges, TensorRT caches and Q/DQ."""
