"""Registry of method pieces: every method package under ``stages/methods/`` registers its pieces by name.

A method (``stages/methods/<method>/``) contributes only its own equations; the generic stages look them up by the
name their JSON parameters give (a recipe in ``config.yaml`` chooses the variant, the variant names the piece).
Importing ``stages.methods`` imports no method; the first ``lookup`` / ``names`` imports every subpackage
(``pkgutil``), so a new method package registers itself without editing any shared file.

API:
    ``@register(kind, name)``  decorator registering a factory, function or class under (kind, name);
    ``lookup(kind, name)``     the registered object; ``ValueError`` listing the known names of that kind if unknown;
    ``names(kind)``            the sorted names registered for a kind.

Kinds in use (the stage parameter that names the piece, with its default, in brackets):
    ``objective``    feature-field objectives of ``train_features`` [``objective``: ``openins_instance``] and
                     ``pseudo_gt`` [``objective``: ``openins_pseudo_gt``]: ``factory(**objective_params)`` ->
                     ``FeatureObjective``; ``train_features`` adds the optional upstream stores its variant names
                     (``codebook``, ``tracks``, ``features``) as keyword arguments holding their paths, ``pseudo_gt``
                     adds ``target`` (the view -> pseudo-ground-truth rendering callable).
    ``codebook``     algorithms of the ``codebook`` stage [``algorithm``: ``openins_two_level``]:
                     ``run(call: StageCall)`` reads ``call.inputs`` and writes the ``codebook`` store at ``call.out``.
    ``association``  rules of the ``associate`` stage [``rule``: ``openins_eq8``]: ``run(call: StageCall)`` writes the
                     ``association`` store at ``call.out``.
    ``text_query``   text queries of ``evaluate_annotations`` [``query``: ``openins_codebook``]:
                     ``build(call: StageCall)`` -> ``AnnotationPredictor`` (``stages.lib.annotations``) from
                     ``call.inputs`` and ``call.options``.
    ``report_label``, ``association_criteria``  how the report names a piece (a string; a method's marks), so
                     method-specific names stay in the method package.
Other methods add kinds (e.g. ``query``, ``cluster``) the same way.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from typing import Any, TypeVar

Piece = TypeVar("Piece")
_REGISTRY: dict[tuple[str, str], Any] = {}
_discovered = False


def register(kind: str, name: str) -> Callable[[Piece], Piece]:
    """Decorator: register the decorated object under (kind, name); a name registered twice is an error."""

    def decorate(obj: Piece) -> Piece:
        if (kind, name) in _REGISTRY and _REGISTRY[(kind, name)] is not obj:
            raise ValueError(f"{kind} {name!r} is registered twice ({_REGISTRY[(kind, name)]!r} and {obj!r})")
        _REGISTRY[(kind, name)] = obj
        return obj

    return decorate


def discover() -> None:
    """Import every method subpackage of ``stages.methods`` once (their modules register on import)."""
    global _discovered
    if _discovered:
        return
    _discovered = True
    for info in pkgutil.iter_modules(__path__, prefix=f"{__name__}."):
        if info.ispkg:
            importlib.import_module(info.name)


def lookup(kind: str, name: str) -> Any:
    """The piece registered under (kind, name); ``ValueError`` naming the known names of that kind otherwise."""
    discover()
    if (kind, name) not in _REGISTRY:
        raise ValueError(f"unknown {kind} {name!r}; known {kind} names: {names(kind)}")
    return _REGISTRY[(kind, name)]


def names(kind: str) -> list[str]:
    """Sorted names registered for ``kind`` (empty for an unknown kind)."""
    discover()
    return sorted(name for k, name in _REGISTRY if k == kind)
