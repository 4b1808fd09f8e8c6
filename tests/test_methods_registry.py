"""The method registry: lookup by (kind, name), the unknown-name error, auto-discovery of method packages."""

import json
import subprocess
import sys

import pytest
import torch

from stages import methods
from stages.methods.openins.association import run_eq8_association
from stages.methods.openins.codebook import run_two_level_codebook
from stages.methods.openins.objectives import OpenInsInstanceObjective, PseudoGTObjective


def test_lookup_returns_the_registered_pieces():
    assert methods.lookup("objective", "openins_instance") is OpenInsInstanceObjective
    assert methods.lookup("objective", "openins_pseudo_gt") is PseudoGTObjective
    assert methods.lookup("codebook", "openins_two_level") is run_two_level_codebook
    assert methods.lookup("association", "openins_eq8") is run_eq8_association
    objective = methods.lookup("objective", "openins_instance")(w_smooth=0.5, contrast_eps=1.0)
    rendered = torch.zeros(2, 2, 1)
    rendered[:, 1] = 1.0  # two masks (the two columns) with mean features 0 and 1: L_s = 0, L_c = 1 / (1 + 1)
    masks = torch.stack([rendered[..., 0] == 0, rendered[..., 0] == 1])
    loss, terms = objective(rendered, masks, step=0, view=0)
    assert terms["L_s"].item() == 0 and terms["L_c"].item() == pytest.approx(0.5) and loss.item() == pytest.approx(0.5)


def test_unknown_name_lists_the_known_names_of_its_kind():
    with pytest.raises(ValueError, match=r"unknown codebook 'nope'; known codebook names: \[") as e:
        methods.lookup("codebook", "nope")
    assert str(methods.names("codebook")) in str(e.value) and "'openins_two_level'" in str(e.value)
    assert "openins_instance" not in str(e.value), "only names of the asked kind are listed"


def test_register_a_piece_and_refuse_a_second_one_under_the_same_name():
    @methods.register("test_kind", "one")
    def one() -> int:
        return 1

    assert methods.lookup("test_kind", "one") is one and methods.names("test_kind") == ["one"]
    with pytest.raises(ValueError, match="registered twice"):
        methods.register("test_kind", "one")(lambda: 2)


def test_first_lookup_discovers_method_packages_without_importing_them():
    code = ("import json, sys; from stages import methods; "
            "assert 'stages.methods.openins' not in sys.modules; "
            "print(json.dumps({k: methods.names(k) for k in ('objective', 'codebook', 'association')}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    found = json.loads(out.splitlines()[-1])
    assert {"openins_instance", "openins_pseudo_gt"} <= set(found["objective"])
    assert "openins_two_level" in found["codebook"] and "openins_eq8" in found["association"]
