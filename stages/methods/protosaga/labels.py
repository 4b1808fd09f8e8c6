"""How the report names Proto-SaGa's pieces: the inference schemes of Table 4 and the association criteria of
Table 3 (depth set Eq. 10, probability set Eq. 15) each association rule uses (``gaga_memory_bank``: the rule with
``semantic: false``; ``probability_memory_bank``: with ``depth: false``)."""

from stages.methods import register

SCHEME_LABELS = {"protosaga_proto": "Proto", "protosaga_proto_3d": "Proto (3D labels)",
                 "protosaga_kmeans": "K-Means", "protosaga_hdbscan": "HDBSCAN"}
ASSOCIATION_CRITERIA = {"gaga_memory_bank": ("yes", ""), "probability_memory_bank": ("", "yes"),
                        "protosaga_memory_bank": ("yes", "yes")}

for _name, _label in SCHEME_LABELS.items():
    register("report_label", _name)(_label)
for _rule, _criteria in ASSOCIATION_CRITERIA.items():
    register("association_criteria", _rule)(_criteria)
