"""The data rftrt ships and how it is read: real sample photographs in ``images/`` (see its
LICENSES.md) and EfficientViT's preprocessing (``images``), image folders as calibration sources
(``sources``), labelled folders (``labelled``), scikit-learn's digits (``digits``), and the
digits-trained checkpoint ``digits_rf.pt``."""
