"""Target profiles, the TensorRT builder, on-device bundles and the cuda-python runtime."""
