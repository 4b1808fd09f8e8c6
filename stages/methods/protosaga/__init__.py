"""Proto-SaGa (prototype-based 3D segmentation with semantic-aware Gaussian grouping) and its Gaga ablation.

- ``classifiers``: per-view cosine classifiers and L_CE (Sec. 3.1, Eq. 6-7, 14); ``objective``: the objective
  ``protosaga_classifiers`` of ``train_features`` (joint with the photometric loss, Eq. 8);
- ``memory_bank``: Eq. 9-16; ``association``: the association rule ``protosaga_memory_bank`` (``semantic: false``
  is Gaga) writing consistent ids per train-view mask as a ``tracks`` store;
- ``prototypes``: Eq. 17-19; ``codebook``: the codebook algorithm ``protosaga_prototypes`` (prototypes and the 3D
  labels as a flat codebook); ``inference``: the ``instance_inference`` schemes of ``evaluate_instances`` (Table 4);
- ``language``: the ``evaluation`` ``protosaga_language`` of ``evaluate_semantic`` (mask CLIP features fused per
  consistent instance);
- ``labels``: the report's names of the schemes and association criteria (``report_label``,
  ``association_criteria``).

Recipes: ``protosaga``, ``gaga``, ``protosaga_gpu``, ``gaga_gpu`` in ``config.yaml``. Equation numbers are the paper's.
"""

from stages.methods.protosaga import association, codebook, inference, labels, language, objective  # noqa: F401
