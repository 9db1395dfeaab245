"""What the deployment targets are: target profiles, TensorRT releases and their version numbers,
batch profiles, and the hardware figures of the GPUs (each a data file with its sources).

A leaf package: it depends on nothing of rftrt but :mod:`rftrt.errors` and :mod:`rftrt._data`, so
export, precision, engines and tools all read the same facts.
"""
