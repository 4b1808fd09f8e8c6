"""OpenInsGaussian (and OpenGaussian, its alpha = 0, tau = 0 ablation): everything the method adds.

- ``losses``: L_s (Eq. 3), L_c (Eq. 4), L_p (Eq. 7);
- ``objectives``: objectives ``openins_instance`` (L_c + L_s, ``train_features``) and ``openins_pseudo_gt``
  (L_p, ``pseudo_gt``);
- ``codebook``: codebook algorithm ``openins_two_level`` (Eq. 5-6);
- ``association``: association rule ``openins_eq8`` (Eq. 8 and the cross-view fusion of CLIP features);
- ``query``: text queries by codebook search (``stages.query``, ``evaluate_semantic``).

Recipes: ``openins``, ``opengaussian``, ``openins_gpu`` in ``config.yaml``.
"""

from stages.methods.openins import association, codebook, objectives, query  # noqa: F401  (register the pieces)
