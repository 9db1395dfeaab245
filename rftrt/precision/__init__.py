"""Deciding and rendering precision: one stage between the passed FP32 ONNX and the bundle.

Entry point: :func:`rftrt.precision.decide.decide_precision` (what ``rf-export`` runs); ``rf-calib``
calls :func:`rftrt.precision.int8.calibrate` on an exported ONNX directly.

=================  =========================================================================
module             what it does
=================  =========================================================================
``plan``           the FP16 plan: which nodes stay FP32 and why (attention cores, LayerNorm,
                   measured ranges beyond FP16, weights FP16 cannot hold)
``render``         the plan rendered as a typed ONNX (FP16 with Cast-guarded FP32 islands)
``ranges``         INT8 activation ranges measured with ONNX Runtime (minmax, percentile, entropy)
``cache``          TensorRT's text calibration cache: written, parsed, checked against an ONNX
``qdq``            explicit Q/DQ nodes, and their strongly typed rendering
``store``          ``calibration.json``: reusing a calibration, refusing a stale one
``int8``           one calibration rendered for a target's dialect, with its accuracy checks
``accuracy``       top-k accuracy and agreement on labelled images
``decide``         the stage as ``rf-export`` runs it: plan, renderings, calibration
=================  =========================================================================
"""
