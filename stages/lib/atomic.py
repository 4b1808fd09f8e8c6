"""Atomic outputs: everything a stage writes goes to a temporary sibling first and is renamed into place when complete.

A reader (or the next stage) therefore sees either the previous output or the finished new one, never a half-written
file or folder under the final name; a failure removes the temporary sibling and leaves the previous output intact.
Zarr stores (``stages.lib.store``), CSV tables (``stages.lib.tables``), report folders and preview images use it.
"""

from __future__ import annotations

import os
import shutil
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


def partial_sibling(path: Path, tag: str = "partial") -> Path:
    """A fresh temporary name next to ``path``: ``<name>.<tag>-<8 hex digits>``."""
    return path.with_name(f"{path.name}.{tag}-{uuid.uuid4().hex[:8]}")


def remove(path: Path) -> None:
    """Remove a file or a folder tree if it exists (cleanup: errors are ignored)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def replace_into_place(partial: Path, path: Path) -> None:
    """Rename the finished ``partial`` onto ``path``. An existing file is replaced in one rename; an existing folder
    (which a rename cannot overwrite) is first renamed aside, then removed once the new one is in place."""
    if path.is_dir() and not path.is_symlink():
        trash = partial_sibling(path, "partial-old")
        os.replace(path, trash)
        os.replace(partial, path)
        remove(trash)
    else:
        os.replace(partial, path)


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """``with atomic_path(out) as tmp: write(tmp)``: ``tmp`` (a file or a folder the caller creates) replaces ``out``
    when the block succeeds and is removed when it fails. The caller must not infer a file format from ``tmp``'s
    suffix (it ends in ``.partial-<id>``)."""
    path = Path(path)
    partial = partial_sibling(path)
    try:
        yield partial
        replace_into_place(partial, path)
    except BaseException:
        remove(partial)
        raise


@contextmanager
def atomic_folder_entries(folder: str | Path) -> Iterator[Path]:
    """``with atomic_folder_entries(out) as tmp: write files under tmp``: on success every entry of ``tmp`` replaces
    its namesake in ``out`` (each file and subfolder in one rename, see ``replace_into_place``) and entries of ``out``
    that ``tmp`` lacks stay (another rule's outputs in the same folder); on failure ``tmp`` is removed and ``out`` is
    untouched. Nothing moves before everything was written, so a failure while writing leaves no new entry."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = partial_sibling(folder)
    staging.mkdir()
    try:
        yield staging
        folder.mkdir(exist_ok=True)
        for entry in sorted(staging.iterdir()):
            replace_into_place(entry, folder / entry.name)
    finally:
        remove(staging)
