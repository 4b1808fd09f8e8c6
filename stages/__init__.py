"""Open-vocabulary 3D Gaussian segmentation pipeline: one runnable module per stage, shared code in ``stages.lib``."""

__version__ = "0.1.0"
