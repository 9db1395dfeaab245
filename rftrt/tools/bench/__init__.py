"""Benchmarks: latency and throughput per batch size, two models side by side, on several backends.

Method (the same for every backend):

1. **Warm-up**: ``warmup`` untimed iterations per model and batch size (CUDA graphs are captured and
   ``torch.compile`` compiles before that).
2. **Interleaved rounds**: ``rounds`` rounds; in each, every model runs ``iterations`` timed
   iterations, the order of the models alternating from round to round, so that a slow drift of the
   machine (clocks, temperature, a neighbour's load) touches both models alike.
3. **Rotated inputs**: each model cycles through ``rotate`` distinct input batches (on the GPU: one
   captured CUDA graph per input buffer), so no iteration reads an input the previous one left in cache.
4. **Statistics** over all timed iterations: median, p90, p99 (linear interpolation between order
   statistics, numpy's default), throughput = batch / median latency, and for a pair the speed ratio
   = median(vs) / median(model) = throughput(model) / throughput(vs), with its spread over rounds.

What a timed iteration contains depends on the backend, and each result says so (``timing`` and
``copies``):

=============== ================================================== =========================================
backend         timing                                             host↔device copies
=============== ================================================== =========================================
ort             wall clock around ``session.run`` (CPU)            none: host memory
ort-cuda        wall clock around ``session.run``                  included (NumPy in and out) by default;
                                                                   ``copies="exclude"``: IO binding on device
torch           CUDA events around a CUDA-graph replay (eager)     excluded by default (static device input);
torch-compile   CUDA events around a CUDA-graph replay (inductor)  ``include``: pinned H2D + D2H in the events
trt             CUDA events around ``execute_async_v3``            excluded by default (enqueue only, like
                                                                   trtexec's GPU compute time); ``include``:
                                                                   wall clock around ``EngineRunner.infer``
=============== ================================================== =========================================

EfficientViT's published GPU throughputs include the copies; trtexec's "GPU Compute Time" does not.

ONNX Runtime timing runs in a worker process that imports ONNX Runtime and NumPy only (never torch:
ORT's spinning threads and torch's disturb each other), started with
``python -m rftrt.tools.bench --ort-worker``; the parent exports the ONNX files with torch and never
times anything itself.

The modules, one job each:

- ``stats``: percentiles, :class:`LatencyStats`, throughput;
- ``results``: the settings and the results as data (:class:`BenchSettings`,
  :class:`BackendInfo`, :class:`Measurement`, :class:`PairResult`, :class:`Environment`,
  :class:`BenchReport`);
- ``schedule``: the interleaved schedule (:func:`interleave`) and the progress line;
- ``environment``: the machine (CPU, GPUs and driver, versions, threads);
- ``backends``: ``base`` (what a backend provides), ``registry`` (the backends by name, which run
  here), ``ort`` and its timing process ``ort_worker``, ``torch_cuda``, ``trt`` (with
  :class:`EngineInfo`);
- ``run``: :func:`run_benchmark`, one run of two models on some backends;
- ``paper``: the paper's pairs and figures, the engines for them, :func:`run_paper_table`;
- ``request``: what ``rf-bench`` is asked for, checked as a whole, then run;
- ``report``: the terminal table, the Markdown report, the plot, the output files;
- ``__main__``: ``--ort-worker``, the entry point of the ONNX Runtime timing process.

No module of this package imports torch or onnxruntime at import time.
"""
