"""SAGA (Segment Any 3D GAussians): scale-gated affinity features, promptable 3D segmentation, decomposition.

- ``scales``: mask 3D scales (Eq. 2) and their per-scene normalisation (the ``mask_scales`` stage);
- ``gate``: the scale gate (Eq. 3/5); ``losses``: scale-aware contrastive learning (Eq. 6-13, A.1);
- ``smoothing``: local feature smoothing (Sec. 3.3); ``objective``: the ``train_features`` objective ``saga``;
- ``field`` / ``prompt``: a trained field and point-prompt inference (Sec. 3.5); ``decompose``: HDBSCAN scene
  decomposition (Sec. 3.5); ``vote`` / ``labelling``: vote-based open vocabulary (A.3), the ``codebook`` algorithm
  ``saga_vote_graph`` and the ``association`` rule ``saga_vote``; ``evaluation``: NVOS / SPIn-NeRF protocols
  (the ``evaluate_prompt`` stage).

Recipes: ``saga`` (CPU demo size) and ``saga_gpu`` in ``config.yaml``.
"""

from stages.methods.saga import labelling, objective  # noqa: F401  (register the pieces)
