"""rftrt: a TensorRT deployment toolchain for ReduceFormer and EfficientViT vision models."""

__version__ = "0.1.0"
