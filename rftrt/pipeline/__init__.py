"""``rf-export``'s pipeline: model → ONNX → passes → precision → validation → bundle → engine.

``options`` says what a run is asked and checks it, ``run`` has one function per stage, and
``bundle_files`` makes the bundle's files from the results.
"""

from .options import ExportOptions, ExportResult, default_output_dir
from .run import run_export, write_report

__all__ = ["ExportOptions", "ExportResult", "run_export", "default_output_dir", "write_report"]
