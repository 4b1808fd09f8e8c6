"""Model-weights registry (``workflow/weights.yaml``): where each checkpoint lives, where it comes from, its hash.

Every stage that loads pretrained weights calls :func:`resolve_checkpoint` first: it checks that the file (or
every file of a diffusers directory) exists and has the expected SHA-256, and otherwise raises
:class:`WeightsError` naming the file, the expected hash, the URL and the exact fetch command.

Hashes of multi-GB files are cached in ``<weights_dir>/weights.lock.json`` keyed by (path, size, mtime), so a
checkpoint is hashed once, not on every load. For registry entries whose ``sha256`` is ``null`` (no published
hash), the same lock file pins the hash recorded when the file was fetched (or first seen), and later checks
compare against that pin.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

import yaml

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_REGISTRY = PROJECT_ROOT / "workflow" / "weights.yaml"
LOCK_NAME = "weights.lock.json"
FAMILIES = ("sam", "sam2", "open_clip", "diffusers")
_CHUNK = 1 << 20


class WeightsError(FileNotFoundError):
    """A checkpoint is missing, corrupt or unknown; the message says how to fetch it."""


@dataclass(frozen=True)
class WeightFile:
    """One file of a model: its path relative to the weights dir, its URL and its published hash (or None)."""

    relpath: str
    url: str
    sha256: str | None


@dataclass(frozen=True)
class WeightSpec:
    """One registry entry; ``files`` is only set for directory models (diffusers)."""

    name: str
    family: str
    arch: str
    filename: str
    url: str
    sha256: str | None
    note: str
    files: Mapping[str, str | None] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, name: str, raw: Mapping[str, Any]) -> "WeightSpec":
        """Validate one YAML entry."""
        missing = {"family", "arch", "filename", "url", "note"} - set(raw)
        unknown = set(raw) - {"family", "arch", "filename", "url", "sha256", "note", "files"}
        if missing or unknown:
            raise ValueError(f"weights registry entry {name!r}: missing {sorted(missing)}, unknown {sorted(unknown)}")
        if raw["family"] not in FAMILIES:
            raise ValueError(f"weights registry entry {name!r}: family must be one of {FAMILIES}")
        if (raw["family"] == "diffusers") != bool(raw.get("files")):
            raise ValueError(f"weights registry entry {name!r}: 'files' is required for diffusers entries only")
        return cls(name=name, family=raw["family"], arch=str(raw["arch"]), filename=raw["filename"],
                   url=raw["url"], sha256=_norm_hash(raw.get("sha256")), note=raw["note"],
                   files={k: _norm_hash(v) for k, v in (raw.get("files") or {}).items()})

    @property
    def is_directory(self) -> bool:
        return bool(self.files)

    def weight_files(self) -> list[WeightFile]:
        """The files that make up this model, with their URLs and expected hashes."""
        if not self.is_directory:
            return [WeightFile(self.filename, self.url, self.sha256)]
        base = self.url if self.url.endswith("/") else self.url + "/"
        return [WeightFile(f"{self.filename}/{rel}", base + rel, sha) for rel, sha in self.files.items()]

    def fetch_command(self, weights_dir: Path) -> str:
        return f"python -m stages.weights fetch {self.name} --weights-dir {weights_dir}"


def _norm_hash(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).lower()
    if len(text) != 64 or any(c not in "0123456789abcdef" for c in text):
        raise ValueError(f"not a SHA-256 hex digest: {value!r}")
    return text


def load_registry(path: Path | str | None = None) -> dict[str, WeightSpec]:
    """Parse the registry YAML (default ``workflow/weights.yaml``) into ``{name: WeightSpec}``."""
    path = Path(path) if path else DEFAULT_REGISTRY
    raw = yaml.safe_load(path.read_text())
    return {name: WeightSpec.from_dict(name, entry) for name, entry in (raw.get("models") or {}).items()}


def default_weights_dir() -> Path:
    """``$OVGS_WEIGHTS`` if set, else ``weights/`` in the project root."""
    return Path(os.environ.get("OVGS_WEIGHTS") or PROJECT_ROOT / "weights")


def get_spec(name: str, registry: Mapping[str, WeightSpec] | None = None) -> WeightSpec:
    registry = load_registry() if registry is None else registry
    if name not in registry:
        raise WeightsError(f"unknown model {name!r}; known: {', '.join(sorted(registry))}")
    return registry[name]


def sha256_file(path: Path) -> str:
    """SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


class LockFile:
    """``<weights_dir>/weights.lock.json``: hash cache keyed by (relpath, size, mtime) and pins for unpublished hashes.

    Writes are atomic (temp file + rename); a read-only weights directory only disables the cache.
    """

    def __init__(self, weights_dir: Path):
        self.path = Path(weights_dir) / LOCK_NAME
        data = json.loads(self.path.read_text()) if self.path.exists() else {}
        self.hashes: dict[str, dict[str, Any]] = data.get("hashes", {})
        self.pins: dict[str, str] = data.get("pins", {})

    def cached_hash(self, relpath: str, path: Path) -> str:
        """The file's SHA-256, from the cache when its size and mtime are unchanged, else hashed and cached."""
        st = path.stat()
        entry = self.hashes.get(relpath)
        if entry and entry["size"] == st.st_size and entry["mtime_ns"] == st.st_mtime_ns:
            return entry["sha256"]
        log.info("hashing %s (%.1f MB)", path, st.st_size / 1e6)
        digest = sha256_file(path)
        self.record(relpath, path, digest)
        return digest

    def record(self, relpath: str, path: Path, digest: str) -> None:
        st = path.stat()
        self.hashes[relpath] = {"sha256": digest, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
        self.save()

    def pin(self, relpath: str, digest: str) -> None:
        self.pins[relpath] = digest
        self.save()

    def save(self) -> None:
        tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
        try:
            tmp.write_text(json.dumps({"hashes": self.hashes, "pins": self.pins}, indent=1, sort_keys=True))
            os.replace(tmp, self.path)
        except OSError as exc:
            log.debug("could not write %s: %s", self.path, exc)


@dataclass(frozen=True)
class FileStatus:
    """Outcome of checking one file: ``ok`` | ``missing`` | ``bad`` (hash mismatch)."""

    file: WeightFile
    path: Path
    status: str
    actual: str | None
    expected: str | None
    pinned_now: bool = False


def check_file(wf: WeightFile, weights_dir: Path, lock: LockFile) -> FileStatus:
    """Check one file against its published hash, or against (else into) the lock file's pin."""
    path = weights_dir / wf.relpath
    if not path.is_file():
        return FileStatus(wf, path, "missing", None, wf.sha256 or lock.pins.get(wf.relpath))
    actual = lock.cached_hash(wf.relpath, path)
    expected = wf.sha256 or lock.pins.get(wf.relpath)
    if expected is None:
        log.warning("%s has no published SHA-256 and no pin yet; pinning %s (trust on first use)", path, actual)
        lock.pin(wf.relpath, actual)
        return FileStatus(wf, path, "ok", actual, actual, pinned_now=True)
    return FileStatus(wf, path, "ok" if actual == expected else "bad", actual, expected)


def check_model(spec: WeightSpec, weights_dir: Path) -> list[FileStatus]:
    """Status of every file of a model."""
    lock = LockFile(weights_dir)
    return [check_file(wf, weights_dir, lock) for wf in spec.weight_files()]


def _problem(spec: WeightSpec, st: FileStatus, weights_dir: Path) -> str:
    if st.status == "missing":
        what = f"{spec.name}: {st.path} is missing (expected SHA-256 {st.expected or 'not published'})"
    else:
        what = (f"{spec.name}: {st.path} has SHA-256 {st.actual} but {st.expected} is expected "
                f"(corrupt or partial download; delete it)")
    return f"{what}. Fetch it with: {spec.fetch_command(weights_dir)}  (source: {st.file.url})"


def resolve_checkpoint(name: str, weights_dir: Path | str | None = None,
                       registry: Mapping[str, WeightSpec] | None = None) -> Path:
    """The verified path of model ``name`` (a file, or a directory for diffusers models); raises WeightsError."""
    spec = get_spec(name, registry)
    weights_dir = Path(weights_dir) if weights_dir else default_weights_dir()
    problems = [_problem(spec, st, weights_dir) for st in check_model(spec, weights_dir) if st.status != "ok"]
    if problems:
        raise WeightsError("\n".join(problems))
    return weights_dir / spec.filename


def spec_for_path(path: Path, registry: Mapping[str, WeightSpec] | None = None) -> WeightSpec | None:
    """The registry entry with the same file name as ``path`` (to give a fetch hint for a bare checkpoint path)."""
    registry = load_registry() if registry is None else registry
    return next((s for s in registry.values() if Path(s.filename).name == Path(path).name), None)


def require_file(path: Path | str) -> Path:
    """``path`` if it is a file, else WeightsError with the fetch command when the registry knows the file."""
    path = Path(path)
    if path.is_file():
        return path
    spec = spec_for_path(path)
    if spec is None:
        raise WeightsError(f"checkpoint {path} does not exist")
    posix = path.as_posix()
    weights_dir = Path(posix[: -len(spec.filename)] or ".") if posix.endswith(spec.filename) else default_weights_dir()
    raise WeightsError(f"checkpoint {path} does not exist (expected SHA-256 {spec.sha256 or 'not published'}). "
                       f"Fetch it with: {spec.fetch_command(weights_dir)}  (source: {spec.url})")


def iter_specs(names: list[str] | None, registry: Mapping[str, WeightSpec]) -> Iterator[WeightSpec]:
    """The named entries (all when ``names`` is empty), failing on unknown names."""
    for name in names or list(registry):
        yield get_spec(name, registry)


@dataclass(frozen=True)
class ModelChoice:
    """The model block of a stage's parameters: a registry name, and random weights for tests and benches only."""

    name: str
    random_weights: bool = False

    @classmethod
    def from_params(cls, block: Mapping[str, Any], default: str) -> "ModelChoice":
        return cls(str(block.get("model", default)), bool(block.get("random_weights", False)))

    @property
    def arch(self) -> str:
        return get_spec(self.name).arch

    def checkpoint(self, weights_dir: Path | str | None) -> Path | None:
        """The verified checkpoint (``WeightsError`` before any work if missing or bad); None for random weights."""
        return None if self.random_weights else resolve_checkpoint(self.name, weights_dir)

    def attrs(self) -> dict[str, Any]:
        """What the output store records about the model."""
        return {"model": self.name, "random_weights": self.random_weights}
