"""Model weights: list the registry, fetch checkpoints, verify what is on disk.

  python -m stages.weights list
  python -m stages.weights fetch [names...] [--weights-dir DIR]
  python -m stages.weights verify [names...] [--weights-dir DIR]

Names are registry keys of ``workflow/weights.yaml`` (all entries when none are given). The weights directory
defaults to ``$OVGS_WEIGHTS``, else ``weights/`` in the project root. ``fetch`` downloads into ``<file>.partial``
and renames only after the SHA-256 matches; for entries without a published hash it pins the downloaded hash in
``<weights_dir>/weights.lock.json``. ``verify`` prints one row per file (ok | missing | bad) and exits 1 when a
file is bad or when a model named on the command line is missing.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import sys
import urllib.request
from pathlib import Path

from tabulate import tabulate
from tqdm import tqdm

from stages.lib.weights import (
    FileStatus,
    LockFile,
    WeightFile,
    WeightsError,
    WeightSpec,
    check_file,
    check_model,
    default_weights_dir,
    iter_specs,
    load_registry,
)

log = logging.getLogger("stages.weights")
_CHUNK = 1 << 20


def download(url: str, dest: Path, expected: str | None, progress: bool = True) -> str:
    """Stream ``url`` into ``dest.partial``, check its SHA-256, rename to ``dest``; returns the digest."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + ".partial")
    digest = hashlib.sha256()
    with urllib.request.urlopen(url) as response, open(partial, "wb") as out, \
            tqdm(total=int(response.headers.get("Content-Length") or 0) or None, unit="B", unit_scale=True,
                 unit_divisor=1024, desc=dest.name, disable=not progress) as bar:
        for chunk in iter(lambda: response.read(_CHUNK), b""):
            out.write(chunk)
            digest.update(chunk)
            bar.update(len(chunk))
    actual = digest.hexdigest()
    if expected is not None and actual != expected:
        partial.unlink()
        raise WeightsError(f"download of {url} has SHA-256 {actual} but {expected} is expected; nothing was kept")
    os.replace(partial, dest)
    return actual


def fetch_file(wf: WeightFile, weights_dir: Path, lock: LockFile, progress: bool) -> str:
    """Download one file unless it is already present and verified; returns 'present' or 'fetched'."""
    if check_file(wf, weights_dir, lock).status == "ok":
        return "present"
    dest = weights_dir / wf.relpath
    log.info("fetching %s -> %s", wf.url, dest)
    digest = download(wf.url, dest, wf.sha256 or lock.pins.get(wf.relpath), progress)
    lock.record(wf.relpath, dest, digest)
    if wf.sha256 is None:
        lock.pin(wf.relpath, digest)
    return "fetched"


def fetch(specs: list[WeightSpec], weights_dir: Path, progress: bool = True) -> None:
    """Fetch every file of the given models into ``weights_dir``."""
    weights_dir.mkdir(parents=True, exist_ok=True)
    lock = LockFile(weights_dir)
    for spec in specs:
        for wf in spec.weight_files():
            log.info("%s: %s %s", spec.name, wf.relpath, fetch_file(wf, weights_dir, lock, progress))


def verify(specs: list[WeightSpec], weights_dir: Path, named: bool) -> int:
    """Print the status table; 1 if any file is bad, or (for models named explicitly) missing."""
    rows: list[list[str]] = []
    failed = False
    for spec in specs:
        for st in check_model(spec, weights_dir):
            rows.append([spec.name, st.file.relpath, _status_text(st), (st.actual or "-")[:16],
                         (st.expected or "not published")[:16]])
            failed |= st.status == "bad" or (named and st.status == "missing")
    print(f"weights dir: {weights_dir}")
    print(tabulate(rows, headers=["model", "file", "status", "sha256", "expected"]))
    return int(failed)


def _status_text(st: FileStatus) -> str:
    return "ok (pinned now)" if st.pinned_now else st.status


def _published(spec: WeightSpec) -> str:
    hashes = [wf.sha256 for wf in spec.weight_files()]
    return "all" if all(hashes) else "some" if any(hashes) else "none"


def list_registry(registry: dict[str, WeightSpec]) -> None:
    rows = [[s.name, s.family, s.arch, s.filename, _published(s), s.note] for s in registry.values()]
    print(tabulate(rows, headers=["name", "family", "arch", "filename", "sha256 published", "note"]))


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m stages.weights", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("command", choices=["list", "fetch", "verify"])
    p.add_argument("names", nargs="*", help="registry names (default: all)")
    p.add_argument("--weights-dir", type=Path, default=None, help="default: $OVGS_WEIGHTS, else weights/")
    p.add_argument("--registry", type=Path, default=None, help="registry YAML (default: workflow/weights.yaml)")
    p.add_argument("--no-progress", action="store_true", help="no download progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = parser().parse_args(argv)
    registry = load_registry(args.registry)
    weights_dir = args.weights_dir or default_weights_dir()
    try:
        specs = list(iter_specs(args.names, registry))
        if args.command == "list":
            list_registry({s.name: s for s in specs})
        elif args.command == "fetch":
            fetch(specs, weights_dir, progress=not args.no_progress)
        else:
            return verify(specs, weights_dir, named=bool(args.names))
    except (WeightsError, OSError) as exc:
        log.error("%s", exc)
        sys.exit(f"error: {exc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
