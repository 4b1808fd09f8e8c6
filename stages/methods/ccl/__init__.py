"""CCL-LGS (Tian et al.): contrastive codebook learning over tracked mask features, index maps, and an 8-d semantic
field per level decoded by an MLP over the codebook's prototypes.

- ``losses``: L_max, L_pull, L_push and L (Eq. 4-8);
- ``codebook``: the streaming codebook learner and index maps (Sec. 3.3-3.4), codebook algorithm ``ccl_contrastive``
  (writes a ``prototypes`` store);
- ``field``: the MLP decoder and the Eq. 9 objective ``ccl_semantic`` of ``train_features`` (decoders saved with the
  field);
- ``relevance``: Eq. 10 with canonical negatives, level selection, class labels;
- ``query``: ``CCLField``, 2D relevance maps and 3D (per-Gaussian) queries (``stages.query --method ccl``);
- ``evaluate``: evaluation ``ccl`` of ``evaluate_semantic`` (LERF mIoU + localization, 3D-OVS mIoU, ScanNet 3D).

Recipes: ``ccl`` (CPU demo size), ``ccl_pull_only`` / ``ccl_push_only`` (Table 2 ablations), ``ccl_gpu``.
"""

from stages.methods.ccl import codebook, evaluate, field, query  # noqa: F401  (register the pieces)
