"""Proto-SaGa (prototype-based 3D segmentation with semantic-aware Gaussian grouping) and its Gaga ablation.

Sec. 3.1: per-view classifiers on rendered 16-d features (``classifiers``); Sec. 3.2: the (semantic-aware) memory
bank that gives every training mask a consistent instance id (``memory_bank``); Sec. 3.3: prototype inference
(``prototypes``). Equation numbers are those of the paper.
"""
