"""Structural checks of COLMAP model files before pycolmap reads them.

pycolmap silently drops the last image of an ``images.txt`` cut before its POINTS2D line, reads past the end of
a cut ``cameras.bin``, and reports an unknown camera id without naming the image; these checks name the file,
the line (text) or record (binary), and the image. Layouts: COLMAP's documented text and binary model formats
(``cameras`` / ``images``; ``points3D`` is left to pycolmap).
"""

from __future__ import annotations

import struct
from pathlib import Path

from stages.lib.scene import SceneError


def _num_params(model: str | int, where: str) -> int:
    import pycolmap

    try:
        cam = (pycolmap.Camera.create_from_model_name(1, model, 1.0, 1, 1) if isinstance(model, str)
               else pycolmap.Camera.create_from_model_id(1, pycolmap.CameraModelId(model), 1.0, 1, 1))
    except Exception as exc:  # unknown model name / id
        raise SceneError(f"{where}: unknown camera model {model!r}") from exc
    return len(cam.params)


def _data_lines(path: Path) -> list[tuple[int, str]]:
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise SceneError(f"{path}: cannot read the COLMAP text file ({exc})") from exc
    return [(i, line.strip()) for i, line in enumerate(text.splitlines(), start=1)]


def text_camera_ids(path: Path) -> set[int]:
    """Camera ids of a ``cameras.txt`` (``CAMERA_ID MODEL WIDTH HEIGHT PARAMS[]`` per line)."""
    ids = set()
    for n, line in _data_lines(path):
        if not line or line.startswith("#"):
            continue
        tok = line.split()
        where = f"{path}: line {n}"
        try:
            cid, width, height = int(tok[0]), int(tok[2]), int(tok[3])
            params = [float(t) for t in tok[4:]]
        except (IndexError, ValueError) as exc:
            raise SceneError(f"{where}: expected CAMERA_ID MODEL WIDTH HEIGHT PARAMS[] ({exc})") from exc
        expected = _num_params(tok[1], where)
        if len(params) != expected or width <= 0 or height <= 0:
            raise SceneError(f"{where}: camera {cid} ({tok[1]}) needs {expected} parameters and a positive size, "
                             f"got {len(params)} parameters and {width}x{height}")
        ids.add(cid)
    return ids


def check_text_images(path: Path, camera_ids: set[int], cameras_file: Path) -> None:
    """Every image line of an ``images.txt`` is complete, uses a known camera and has its POINTS2D line."""
    lines = _data_lines(path)
    i = 0
    while i < len(lines):
        n, line = lines[i]
        i += 1
        if not line or line.startswith("#"):
            continue
        tok = line.split()
        where = f"{path}: line {n}"
        try:
            if len(tok) < 10:
                raise ValueError(f"{len(tok)} fields")
            [float(t) for t in tok[1:8]]
            cid, name = int(tok[8]), " ".join(tok[9:])
            int(tok[0])
        except ValueError as exc:
            raise SceneError(f"{where}: expected IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME ({exc}; "
                             f"truncated file?)") from exc
        if cid not in camera_ids:
            raise SceneError(f"{where}: image {name!r} uses camera id {cid}, which {cameras_file} does not define")
        if i >= len(lines):
            raise SceneError(f"{where}: image {name!r} has no POINTS2D line (truncated file?)")
        n2, points = lines[i]
        i += 1
        if len(points.split()) % 3:
            raise SceneError(f"{path}: line {n2}: POINTS2D of image {name!r} must be (X, Y, POINT3D_ID) triples "
                             f"(truncated file?)")


class _Bytes:
    """A little-endian cursor over a binary model file; reading past its end names the file and the record."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.data = path.read_bytes()
        except OSError as exc:
            raise SceneError(f"{path}: cannot read the COLMAP binary file ({exc})") from exc
        self.pos = 0
        self.record = "header"

    def take(self, fmt: str) -> tuple:
        size = struct.calcsize("<" + fmt)
        if self.pos + size > len(self.data):
            raise SceneError(f"{self.path}: file ends inside {self.record} (byte {len(self.data)}; truncated file?)")
        out = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += size
        return out

    def name(self) -> str:
        end = self.data.find(b"\0", self.pos)
        if end < 0:
            raise SceneError(f"{self.path}: file ends inside {self.record} (truncated file?)")
        out = self.data[self.pos:end].decode(errors="replace")
        self.pos = end + 1
        return out

    def done(self) -> None:
        if self.pos != len(self.data):
            raise SceneError(f"{self.path}: {len(self.data) - self.pos} bytes left after the last record "
                             f"(not a COLMAP model file of this kind?)")


def binary_camera_ids(path: Path) -> set[int]:
    """Camera ids of a ``cameras.bin``; a cut or padded file is an error naming it."""
    f = _Bytes(path)
    ids = set()
    for k in range(f.take("Q")[0]):
        f.record = f"camera record {k}"
        cid, model, _, _ = f.take("IiQQ")
        f.take(f"{_num_params(model, f'{path}: camera {cid}')}d")
        ids.add(cid)
    f.done()
    return ids


def check_binary_images(path: Path, camera_ids: set[int], cameras_file: Path) -> None:
    """Every record of an ``images.bin`` is complete and uses a camera that ``cameras.bin`` defines."""
    f = _Bytes(path)
    for k in range(f.take("Q")[0]):
        f.record = f"image record {k}"
        f.take("I7d")
        cid = f.take("I")[0]
        name = f.name()
        f.record = f"image record {k} ({name!r})"
        if cid not in camera_ids:
            raise SceneError(f"{path}: image {name!r} uses camera id {cid}, which {cameras_file} does not define")
        f.take(f"{3 * f.take('Q')[0]}d")  # x, y as doubles and the point id as uint64: 24 bytes each
    f.done()


def check_model_files(sparse: Path) -> None:
    """Check ``cameras`` and ``images`` of a model folder (binary when present, else text) before reading it."""
    if (sparse / "cameras.bin").is_file() and (sparse / "images.bin").is_file():
        check_binary_images(sparse / "images.bin", binary_camera_ids(sparse / "cameras.bin"), sparse / "cameras.bin")
    elif (sparse / "cameras.txt").is_file() and (sparse / "images.txt").is_file():
        check_text_images(sparse / "images.txt", text_camera_ids(sparse / "cameras.txt"), sparse / "cameras.txt")
    else:
        raise SceneError(f"{sparse}: no COLMAP model (cameras.bin + images.bin or cameras.txt + images.txt)")
