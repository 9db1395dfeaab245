"""The device kit: ``rftrt-device.pyz``, a zipapp in every bundle that builds, verifies and times the
bundle's engine on the device with nothing installed but what the device ships (Python ≥ 3.8, NumPy,
TensorRT, cuda-python). ``kit`` assembles it from the package's own modules; ``info`` says what a
bundle is and what a device has; ``bench`` times the bundle's engine."""
