"""CCL-LGS (Tian et al.): contrastive codebook learning over tracked mask features, index maps, and an 8-d semantic
field per level decoded by an MLP over the codebook's prototypes.

``losses``: Eq. 4-8; ``codebook``: the streaming codebook learner and index maps (Sec. 3.3-3.4); ``field``: the
decoder and the Eq. 9 objective; ``relevance``: text queries (Eq. 10), level selection and class labels.
"""
