"""Bad input everywhere: ``python -m stages.ingest`` answers every malformed scene (all readers) and every OS error
(a full disk, permissions, a missing or blocked output folder) with exit status 1 and one line naming the file,
no traceback, and nothing under the output path.

The cases run the stage's command line in-process (``run_stage``: ``sys.exit("error: ...")`` is exit status 1);
two cases run the real ``python -m stages.ingest`` to check the process's status and stderr end to end.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_readers import random_images, truncate, write_colmap, write_idr, write_llff, write_nerf
from test_readers_scannet import SCAN, ground_truth_scene

from stages import ingest
from stages.lib import store
from stages.lib.cli import run_stage
from stages.lib.readers.scannet_layout import write_scannet_scan

REPO = Path(__file__).resolve().parents[1]


def colmap_text(root: Path) -> Path:
    """A COLMAP scene whose model is in the text format."""
    import pycolmap

    write_colmap(root)
    sparse = root / "sparse" / "0"
    rec = pycolmap.Reconstruction(str(sparse))
    shutil.rmtree(sparse)
    sparse.mkdir()
    rec.write_text(str(sparse))
    return root


def edit_lines(path: Path, edit) -> None:
    path.write_text("\n".join(edit(path.read_text().splitlines())) + "\n")


def image_line(lines: list[str], k: int = 0) -> int:
    """Index of the ``k``-th image line of an images.txt whose images have no 2D points (empty POINTS2D lines)."""
    return [i for i, line in enumerate(lines) if line and not line.startswith("#")][k]


def resize_one(path: Path, size: tuple[int, int] = (20, 14)) -> None:
    Image.open(path).resize(size).save(path)


def _colmap_truncated_txt(root: Path) -> None:
    colmap_text(root)
    edit_lines(root / "sparse/0/images.txt", lambda lines: lines[: image_line(lines, 9) + 1])


def _colmap_unknown_camera(root: Path) -> None:
    colmap_text(root)

    def edit(lines):
        i = image_line(lines, 3)
        lines[i] = " ".join(lines[i].split()[:8] + ["7"] + lines[i].split()[9:])
        return lines
    edit_lines(root / "sparse/0/images.txt", edit)


def _colmap_cut_image_line(root: Path) -> None:
    colmap_text(root)

    def edit(lines):
        i = image_line(lines, 2)
        lines[i] = " ".join(lines[i].split()[:6])
        return lines
    edit_lines(root / "sparse/0/images.txt", edit)


def _colmap_camera_params(root: Path) -> None:
    colmap_text(root)
    edit_lines(root / "sparse/0/cameras.txt", lambda lines: [line.rsplit(" ", 1)[0] if line[:1] == "1" else line
                                                             for line in lines])


def _colmap_truncated_bin(root: Path) -> None:
    write_colmap(root)
    truncate(root / "sparse/0/images.bin")


def _colmap_mixed_sizes(root: Path) -> None:
    write_colmap(root)
    resize_one(root / "images/img_04.png", (32, 24))  # the camera's aspect ratio, twice its size
    resize_one(root / "images/img_07.png", (32, 24))


def _nerf_frame_without_image(root: Path) -> None:
    write_nerf(root)
    (root / "train/r_4.png").unlink()


def _nerf_mixed_sizes(root: Path) -> None:
    write_nerf(root)
    resize_one(root / "train/r_3.png")


def _nerf_not_json(root: Path) -> None:
    write_nerf(root)
    (root / "transforms_train.json").write_text("{'frames': [")


def _llff_mixed_sizes(root: Path) -> None:
    write_llff(root)
    resize_one(root / "images_8/IMG_0006.png")


def _llff_count(root: Path) -> None:
    write_llff(root)
    (root / "images_8/IMG_0002.png").unlink()


def _idr_missing_camera(root: Path) -> None:
    write_idr(root)
    Image.fromarray(random_images(1, seed=0)[0]).save(root / "image/000009.png")


def _idr_mixed_sizes(root: Path) -> None:
    write_idr(root)
    resize_one(root / "image/000005.png")
    resize_one(root / "mask/005.png")


def _scannet(root: Path) -> Path:
    return write_scannet_scan(ground_truth_scene(), root.parent, root.name)


def _scannet_pose_without_colour(root: Path) -> None:
    _scannet(root)
    (root / "color/2.jpg").unlink()


def _scannet_depth_8bit(root: Path) -> None:
    _scannet(root)
    Image.fromarray(np.full((12, 16), 9, np.uint8)).save(root / "depth/3.png")


def _scannet_unknown_segment(root: Path) -> None:
    _scannet(root)
    agg = root / f"{SCAN}.aggregation.json"
    data = json.loads(agg.read_text())
    data["segGroups"][2]["segments"] = [123456]
    agg.write_text(json.dumps(data))


def _scannet_mixed_sizes(root: Path) -> None:
    _scannet(root)
    for name in ("color/4.jpg", "label-filt/4.png", "instance-filt/4.png"):
        resize_one(root / name)


READER_CASES = {  # case: (reader, reader options, break the scene, texts the one-line error must contain)
    "colmap truncated images.txt": ("colmap", {}, _colmap_truncated_txt, ["images.txt: line", "img_", "POINTS2D"]),
    "colmap unknown camera id": ("colmap", {}, _colmap_unknown_camera, ["images.txt: line", "camera id 7",
                                                                         "cameras.txt"]),
    "colmap cut image line": ("colmap", {}, _colmap_cut_image_line, ["images.txt: line", "IMAGE_ID"]),
    "colmap camera parameters": ("colmap", {}, _colmap_camera_params, ["cameras.txt: line", "PINHOLE", "4"]),
    "colmap truncated images.bin": ("colmap", {}, _colmap_truncated_bin, ["images.bin", "truncated"]),
    "colmap mixed sizes": ("colmap", {}, _colmap_mixed_sizes, ["images/img_04.png", "32x24", "img_00.png"]),
    "nerf_json frame without image": ("nerf_json", {}, _nerf_frame_without_image, ["transforms_train.json",
                                                                                   "frame 4", "r_4.png"]),
    "nerf_json mixed sizes": ("nerf_json", {}, _nerf_mixed_sizes, ["train/r_3.png", "20x14"]),
    "nerf_json not json": ("nerf_json", {}, _nerf_not_json, ["transforms_train.json", "JSON"]),
    "llff mixed sizes": ("llff", {}, _llff_mixed_sizes, ["images_8/IMG_0006.png", "20x14"]),
    "llff pose count": ("llff", {}, _llff_count, ["poses_bounds.npy", "images_8"]),
    "idr image without camera": ("idr", {}, _idr_missing_camera, ["cameras_sphere.npz", "world_mat_9"]),
    "idr mixed sizes": ("idr", {}, _idr_mixed_sizes, ["image/000005.png", "20x14"]),
    "scannet pose without colour": ("scannet", {}, _scannet_pose_without_colour, ["pose/2.txt", "color/2.jpg"]),
    "scannet 8-bit depth": ("scannet", {}, _scannet_depth_8bit, ["depth/3.png", "16-bit"]),
    "scannet unknown segment": ("scannet", {}, _scannet_unknown_segment, ["aggregation.json", "123456"]),
    "scannet mixed sizes": ("scannet", {}, _scannet_mixed_sizes, ["color/4.jpg", "20x14", "color/0.jpg"]),
}


def ingest_argv(reader: str, scene: Path, out: Path, options: dict) -> list[str]:
    return ["--reader", reader, "--path", str(scene), "--dataset", "d", "--scene", "s", "--out", str(out),
            "--params", json.dumps(options)]


def run_ingest(argv: list[str]) -> str:
    """Run the ingest command line in-process; its exit message (which Python prints, exiting with status 1)."""
    with pytest.raises(SystemExit) as info:
        run_stage(ingest.main, ingest.parser(), argv)
    assert isinstance(info.value.code, str), "a string exit code is exit status 1"
    return info.value.code


def assert_one_line_error(message: str, out: Path, *names: str) -> None:
    assert message.startswith("error: ") and "\n" not in message and "Traceback" not in message, message
    for name in names:
        assert name in message, (name, message)
    assert not out.exists()
    assert not list(out.parent.glob("*.partial-*")) if out.parent.exists() else True


@pytest.mark.parametrize("case", sorted(READER_CASES))
def test_reader_bad_input(case, tmp_path):
    reader, options, brk, names = READER_CASES[case]
    scene = tmp_path / (SCAN if reader == "scannet" else "scene")
    brk(scene)
    out = tmp_path / "results" / "scene.zarr"
    assert_one_line_error(run_ingest(ingest_argv(reader, scene, out, options)), out, *names)


# ----------------------------------------------------------------------------------------------
# OS errors while writing or reading
# ----------------------------------------------------------------------------------------------
@pytest.fixture
def good_scan(tmp_path) -> Path:
    return _scannet(tmp_path / SCAN)


def test_output_folder_blocked_by_a_file(good_scan, tmp_path):
    (tmp_path / "results").write_text("a file where the output folder should be")
    out = tmp_path / "results" / "scannet" / "scene.zarr"
    message = run_ingest(ingest_argv("scannet", good_scan, out, {}))
    assert_one_line_error(message, out, str(tmp_path / "results"))
    assert (tmp_path / "results").is_file()


def test_full_disk_while_writing_leaves_nothing(good_scan, tmp_path, monkeypatch):
    written = []
    real_write = store.StoreWriter.write

    def write_until_full(self, name, data):
        if written:  # the first array reaches the disk, the second does not
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self.partial / name))
        written.append(name)
        real_write(self, name, data)

    monkeypatch.setattr(store.StoreWriter, "write", write_until_full)
    out = tmp_path / "results" / "scene.zarr"
    message = run_ingest(ingest_argv("scannet", good_scan, out, {}))
    assert_one_line_error(message, out, "No space left on device", "scene.zarr.partial-")
    assert written == ["images"] and not list((tmp_path / "results").iterdir())


def test_permission_denied_at_commit_leaves_nothing(good_scan, tmp_path, monkeypatch):
    def deny(src, dst):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(src), None, str(dst))

    monkeypatch.setattr(store.os, "replace", deny)
    out = tmp_path / "results" / "scene.zarr"
    message = run_ingest(ingest_argv("scannet", good_scan, out, {}))
    assert_one_line_error(message, out, "Permission denied", f"-> {out}")
    assert not list((tmp_path / "results").iterdir())


def test_unreadable_input_file(good_scan, tmp_path, monkeypatch):
    real = Path.read_bytes
    blocked = good_scan / "color" / "3.jpg"

    def read_bytes(self):
        if self == blocked:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(self))
        return real(self)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    out = tmp_path / "results" / "scene.zarr"
    assert_one_line_error(run_ingest(ingest_argv("scannet", good_scan, out, {})), out, str(blocked),
                          "Permission denied")


# ----------------------------------------------------------------------------------------------
# The real command line: exit status 1, the error as the last line of stderr, no traceback
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["reader error", "OS error"])
def test_command_line_exit_status_and_stderr(kind, good_scan, tmp_path):
    out = tmp_path / "results" / "scene.zarr"
    if kind == "reader error":
        (good_scan / "pose/5.txt").unlink()
        expected = str(good_scan / "color/5.jpg")
    else:
        (tmp_path / "results").write_text("")
        expected = str(tmp_path / "results")
    proc = subprocess.run([sys.executable, "-m", "stages.ingest", *ingest_argv("scannet", good_scan, out, {})],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and expected in last, proc.stderr
    assert "Traceback" not in proc.stderr and not out.exists()
