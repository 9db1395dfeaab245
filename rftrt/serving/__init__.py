"""Serving an L40 bundle at scale: a Triton Inference Server model repository.

``config`` renders each model's ``config.pbtxt`` (the TensorRT plan and its ONNX Runtime variant),
``validate`` parses it with Triton's own ``ModelConfig`` schema and holds it to the bundle,
``readme`` writes the repository's README, ``repository`` writes (or checks) the whole repository
atomically, and ``local_server`` serves the ONNX Runtime variant on the CPU through PyTriton, for
checking clients without a GPU.
"""

from .config import ServingOptions
from .repository import RepositoryReport, check_repository, default_repository_dir, write_repository

__all__ = ["ServingOptions", "RepositoryReport", "write_repository", "check_repository", "default_repository_dir"]
