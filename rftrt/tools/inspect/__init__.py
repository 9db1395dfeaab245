"""``rf-inspect``'s library: what a model costs and where it would run, before any device is involved.

Five views of one model at one resolution, one module each:

- :mod:`.complexity`: parameters and MACs per stage and in total (:func:`rftrt.models.count_complexity`),
  beside the published figures (``zoo.toml``: the model's release, the ReduceFormer paper's table and,
  for EfficientViT, the official modules' per-stage counts), and the MACs counted again on the ONNX
  graph as a cross-check.
- :mod:`.histogram`: the op histogram of the exported ONNX before and after the graph passes (the
  passes ``rf-export`` runs, in the same order).
- :mod:`.traffic`: memory traffic per image, estimated on the ONNX after the passes (what TensorRT is
  given) under the two rules of :data:`.traffic.TRAFFIC_RULES`.
- :mod:`.limits`: per GPU and batch, a *lower bound* on the time no engine can beat (compulsory
  traffic over peak bandwidth, MACs over the dense FP16 rate) and a *model estimate* that keeps
  what fits in the GPU's L2 on chip; the paper's measurements beside them (``tools/paper_tables.toml``).
- :mod:`.dla`: the DLA placement for a target with DLA cores: each node on DLA or GPU with the
  documented reason (``rftrt/targets/dla_rules.toml``), the DLA↔GPU transitions and the DLA
  loadables. It is a *prediction* from the documented rules until a device confirms it
  (``trtexec --verbose`` prints the real placement).

:mod:`.exported` exports the model and runs the passes once for all of them; :mod:`.report` assembles
the views into an :class:`~.report.InspectReport` and renders it.
"""
