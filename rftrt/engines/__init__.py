"""On the device: bundles, building TensorRT engines (rf-build), running them (cuda-python) and verifying them (rf-verify)."""
