"""SAS (Segment Any 3D Scene with Integrated 2D Priors), 2D side: the 2D models (``models2d``: oracle, MaskCLIP dense,
SAM + CLIP masks), model alignment via text (Sec. 3.1), occlusion-aware multi-view fusion, annotation-free model
capability (Sec. 3.2, the ``capability`` stage with its registered ``capability_source`` pieces) and
capability-guided feature fusion (Sec. 3.3, the ``evaluation`` piece ``sas``)."""

from stages.methods.sas import evaluation, query, sources  # noqa: F401  (register the pieces)
