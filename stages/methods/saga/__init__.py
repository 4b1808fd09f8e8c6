"""SAGA (Segment Any 3D GAussians): scale-gated affinity features, promptable 3D segmentation, decomposition.

Modules: ``scales`` (mask 3D scales, Eq. 2, and their per-scene normalisation), ``gate`` (the scale gate, Eq. 3/5),
``losses`` (scale-aware contrastive learning, Eq. 6-13 and A.1), ``smoothing`` (local feature smoothing, Sec. 3.3),
``prompt`` (point-prompt inference, Sec. 3.5), ``vote`` (vote-based open vocabulary, A.3).
"""
