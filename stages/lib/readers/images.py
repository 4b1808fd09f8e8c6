"""Helpers shared by the dataset readers: strict image loading, integer downscaling, view selection,
camera checks and initial point clouds for formats that ship none.

Pixel convention (the whole project): pixel ``(u, v)`` covers ``[u, u+1] x [v, v+1]``, its centre is at
``(u + 0.5, v + 0.5)``, so a principal point at ``(W/2, H/2)`` is the image centre. Under this convention
downscaling by an integer factor ``s`` (after cropping the right/bottom remainder) divides the first two
rows of ``K`` by ``s`` exactly. It is COLMAP's and gsplat's convention. Datasets whose intrinsics put pixel
centres on integer coordinates (OpenCV calibration, ScanNet, IDR/NeuS) are converted with
``integer_centres_to_ours`` (principal point + 0.5).
"""

from __future__ import annotations

import io
import math
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Iterable, Sequence, TypeVar

import numpy as np
from PIL import Image, UnidentifiedImageError

from stages.lib.scene import SceneData, SceneError

T = TypeVar("T")
R = TypeVar("R")

_PNG_IEND = b"IEND\xaeB`\x82"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".JPG", ".JPEG", ".PNG", ".bmp", ".tif", ".tiff", ".webp")


# ----------------------------------------------------------------------------------------------
# Loading
# ----------------------------------------------------------------------------------------------
def _open_fully(path: Path) -> Image.Image:
    """Open and decode the whole file (PIL is lazy); any I/O or decode problem -> ``SceneError``."""
    path = Path(path)
    if not path.is_file():
        raise SceneError(f"{path}: image file does not exist")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SceneError(f"{path}: cannot read image file ({exc})") from exc
    # PIL decodes a PNG whose tail (last IDAT bytes, IEND) is cut off without complaint as long as the
    # pixel rows are complete; a PNG must end with its IEND chunk, so check for it explicitly.
    if data[:8] == b"\x89PNG\r\n\x1a\n" and _PNG_IEND not in data[-4096:]:
        raise SceneError(f"{path}: truncated PNG (no IEND chunk at the end of the file)")
    try:
        img = Image.open(io.BytesIO(data))
        img.load()  # forces a full decode: truncated / corrupt data raises here
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise SceneError(f"{path}: truncated or corrupt image ({exc})") from exc
    return img


def open_image(path: str | Path, expect_format: str | None = None) -> Image.Image:
    """The fully decoded image; ``expect_format`` (PIL's name, e.g. ``"PNG"``, ``"JPEG"``) checks that the file
    is what its name says, a ``SceneError`` naming the file otherwise."""
    img = _open_fully(Path(path))
    found = "JPEG" if img.format == "MPO" else img.format  # PIL names JPEGs with extra frames (camera apps) MPO
    if expect_format is not None and found != expect_format:
        raise SceneError(f"{path}: the file is a {img.format or 'unknown'} image, not {expect_format} as its name says")
    return img


def load_label_png(path: str | Path, what: str, bits: tuple[int, ...] = (8, 16)) -> np.ndarray:
    """A single-channel integer PNG (label or instance ids) as ``(H,W)`` int64; its bit depth must be in ``bits``."""
    img = open_image(path, "PNG")
    depth = {"L": 8, "I;16": 16, "I;16B": 16, "I;16L": 16}.get(img.mode)
    if depth not in bits:
        allowed = " or ".join(f"{b}-bit" for b in bits)
        raise SceneError(f"{path}: {what} must be a single-channel {allowed} PNG of ids, got PIL mode {img.mode}")
    return np.asarray(img).astype(np.int64)


def load_image(path: str | Path) -> np.ndarray:
    """An image as ``(H,W,3)`` RGB or ``(H,W,4)`` RGBA uint8 (RGBA only when the file has alpha)."""
    img = _open_fully(Path(path))
    has_alpha = img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info)
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):  # 16-bit grey as a colour image: keep the top 8 bits
        arr = np.asarray(img).astype(np.uint32)
        arr = (arr >> 8).astype(np.uint8) if arr.max(initial=0) > 255 else arr.astype(np.uint8)
        return np.repeat(arr[..., None], 3, axis=2)
    mode = "RGBA" if has_alpha else "RGB"
    return np.array(img if img.mode == mode else img.convert(mode), dtype=np.uint8)


def load_mask(path: str | Path, threshold: int = 127) -> np.ndarray:
    """A binary mask ``(H,W)`` bool: grey value (luminance for colour files) ``> threshold``."""
    img = _open_fully(Path(path))
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        return np.asarray(img) > threshold
    return np.asarray(img.convert("L")) > threshold


def load_depth_png(path: str | Path, scale: float = 1000.0) -> np.ndarray:
    """A 16-bit depth PNG (e.g. millimetres) as float32 metres ``(H,W)``; 0 stays 0 (unknown)."""
    img = _open_fully(Path(path))
    arr = np.asarray(img)
    if arr.ndim != 2:
        raise SceneError(f"{path}: depth image must be single-channel, got shape {arr.shape} (mode {img.mode})")
    return arr.astype(np.float32) / np.float32(scale)


def parallel_map(fn: Callable[[T], R], items: Sequence[T], workers: int | None = None) -> list[R]:
    """``[fn(x) for x in items]`` on a thread pool (PIL releases the GIL while decoding); order kept."""
    items = list(items)
    workers = workers or min(8, os.cpu_count() or 1, max(1, len(items)))
    if workers <= 1 or len(items) <= 1:
        return [fn(x) for x in items]
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(fn, items))


def list_images(folder: Path) -> list[Path]:
    """Image files of a folder, sorted by name."""
    suffixes = {s.lower() for s in IMAGE_SUFFIXES}
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in suffixes)


# ----------------------------------------------------------------------------------------------
# Resizing by an integer factor
# ----------------------------------------------------------------------------------------------
def check_factor(factor: int) -> int:
    if int(factor) != factor or factor < 1:
        raise ValueError(f"downscale must be a positive integer, got {factor!r}")
    return int(factor)


def downscale_area(img: np.ndarray, factor: int) -> np.ndarray:
    """Box (area) filter by an integer factor; the right/bottom remainder is cropped. Keeps the dtype
    (integer outputs are rounded). Channels are filtered independently (no alpha premultiplication)."""
    factor = check_factor(factor)
    if factor == 1:
        return img
    h, w = img.shape[0] // factor, img.shape[1] // factor
    if h == 0 or w == 0:
        raise ValueError(f"image of size {img.shape[1]}x{img.shape[0]} is smaller than the factor {factor}")
    if img.dtype == np.uint8 and img.ndim in (2, 3):  # PIL's C box filter: ~10x faster than numpy
        box = (0, 0, w * factor, h * factor)
        if img.ndim == 3 and img.shape[2] == 3:
            return np.asarray(Image.fromarray(np.ascontiguousarray(img)).crop(box).reduce(factor)).copy()
        bands = img[..., None] if img.ndim == 2 else img
        out = [np.asarray(Image.fromarray(np.ascontiguousarray(bands[..., c])).crop(box).reduce(factor))
               for c in range(bands.shape[2])]
        return np.stack(out, axis=-1).reshape(h, w, *img.shape[2:])
    x = img[: h * factor, : w * factor].astype(np.float32)
    x = x.reshape(h, factor, w, factor, *img.shape[2:]).mean(axis=(1, 3))
    if np.issubdtype(img.dtype, np.integer):
        info = np.iinfo(img.dtype)
        return np.clip(np.floor(x + 0.5), info.min, info.max).astype(img.dtype)  # round half up, as PIL
    return x.astype(img.dtype)


def downscale_nearest(arr: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour downscale (label maps, masks, depth): the pixel nearest each block's centre."""
    factor = check_factor(factor)
    if factor == 1:
        return arr
    h, w = arr.shape[0] // factor, arr.shape[1] // factor
    off = factor // 2
    return np.ascontiguousarray(arr[off: h * factor: factor, off: w * factor: factor])


def integer_centres_to_ours(K: np.ndarray) -> np.ndarray:
    """Intrinsics whose pixel centres sit on integer coordinates (OpenCV, ScanNet, IDR) in our convention
    (centres at +0.5): the principal point moves by half a pixel, ``c' = c + 0.5``."""
    out = np.array(K, dtype=np.float64, copy=True)
    out[..., :2, 2] += 0.5 * out[..., 2:3, 2]
    return out


def ours_to_integer_centres(K: np.ndarray) -> np.ndarray:
    """Inverse of ``integer_centres_to_ours`` (for writers of such datasets)."""
    out = np.array(K, dtype=np.float64, copy=True)
    out[..., :2, 2] -= 0.5 * out[..., 2:3, 2]
    return out


def check_same_size(sizes: Sequence[tuple[int, int]], paths: Sequence[str | Path]) -> None:
    """Raise ``SceneError`` naming the first file whose stored ``(height, width)`` differs from the first file's."""
    for size, path in zip(sizes, paths):
        if tuple(size) != tuple(sizes[0]):
            raise SceneError(f"{path}: image is {size[1]}x{size[0]} but {paths[0]} is {sizes[0][1]}x{sizes[0][0]}; "
                             f"a scene needs one image size")


def scale_intrinsics(K: np.ndarray, sx: float, sy: float | None = None) -> np.ndarray:
    """Intrinsics for an image resized by ``sx`` horizontally and ``sy`` vertically (edge-aligned pixels)."""
    sy = sx if sy is None else sy
    out = np.array(K, dtype=np.float64, copy=True)
    out[..., 0, :] *= sx
    out[..., 1, :] *= sy
    return out


def resize_scene(scene: SceneData, factor: int) -> SceneData:
    """The scene downscaled by an integer factor: images area-filtered; depth, masks and label maps
    nearest; intrinsics scaled. Returns a new ``SceneData`` (arrays not touched are shared)."""
    factor = check_factor(factor)
    if factor == 1:
        return scene
    import dataclasses

    def each(arr: np.ndarray | None, fn) -> np.ndarray | None:
        return None if arr is None else np.stack([fn(a, factor) for a in arr])

    return dataclasses.replace(
        scene, images=each(scene.images, downscale_area), intrinsics=scale_intrinsics(scene.intrinsics, 1 / factor),
        depth=each(scene.depth, downscale_nearest), foreground=each(scene.foreground, downscale_nearest),
        gt_semantic=each(scene.gt_semantic, downscale_nearest), gt_instance=each(scene.gt_instance, downscale_nearest),
        annotations=None if scene.annotations is None else scene.annotations.downscale(factor),
    )


def composite_downscaled(rgba: np.ndarray, background: Sequence[float],
                         factor: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """An RGBA uint8 image composited over ``background`` (RGB in [0,1]) and area-downscaled by ``factor``:
    ``(rgb uint8 (h,w,3), alpha float32 (h,w) in [0,1])``. Equals compositing at full resolution and then
    area filtering (done on premultiplied colour, in C, for speed; rounding within 1/255)."""
    factor = check_factor(factor)
    bg = np.asarray(background, np.float32) * 255.0
    if factor == 1:
        a = rgba[..., 3:4].astype(np.float32)
        rgb = rgba[..., :3] * (a / 255.0) + bg * (1.0 - a / 255.0)
        return np.clip(np.rint(rgb), 0, 255).astype(np.uint8), rgba[..., 3].astype(np.float32) / 255.0
    h, w = rgba.shape[0] // factor, rgba.shape[1] // factor
    small = np.asarray(Image.fromarray(np.ascontiguousarray(rgba)).convert("RGBa")
                       .crop((0, 0, w * factor, h * factor)).reduce(factor), np.float32)
    a = small[..., 3:4]
    rgb = small[..., :3] + bg * (1.0 - a / 255.0)
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8), small[..., 3] / 255.0


# ----------------------------------------------------------------------------------------------
# View selection and split
# ----------------------------------------------------------------------------------------------
def every_nth_test(num_views: int, test_every: int) -> np.ndarray:
    """The 3DGS / mip-NeRF hold-out: view ``i`` is a test view iff ``i % test_every == 0``."""
    if int(test_every) != test_every or test_every < 2:
        raise ValueError(f"test_every must be an integer >= 2, got {test_every!r}")
    return np.arange(num_views) % int(test_every) == 0


def _evenly(indices: np.ndarray, k: int) -> np.ndarray:
    if k >= len(indices):
        return indices
    return indices[np.unique(np.round(np.linspace(0, len(indices) - 1, k)).astype(int))]


def select_views(is_test: np.ndarray, max_views: int | None) -> np.ndarray:
    """Indices of the views to keep: all of them, or ``max_views`` evenly spaced ones.

    The split is kept: train and test views are subsampled separately, in proportion to their counts,
    with at least one of each (when both exist), so a subsampled scene still validates.
    """
    is_test = np.asarray(is_test, bool)
    n = len(is_test)
    if max_views is None or max_views >= n:
        return np.arange(n)
    if int(max_views) != max_views or max_views < 1:
        raise ValueError(f"max_views must be a positive integer or None, got {max_views!r}")
    test, train = np.where(is_test)[0], np.where(~is_test)[0]
    if len(test) and len(train):
        if max_views < 2:
            raise ValueError("max_views must be >= 2 to keep both a train and a test view")
        k_test = min(len(test), max(1, int(round(max_views * len(test) / n))))
        k_test = min(k_test, max_views - 1)
        keep = np.concatenate([_evenly(train, max_views - k_test), _evenly(test, k_test)])
    else:
        keep = _evenly(np.arange(n), max_views)
    return np.sort(keep)


# ----------------------------------------------------------------------------------------------
# Camera checks (readers name the file a bad camera came from)
# ----------------------------------------------------------------------------------------------
def rigid_error(mat: np.ndarray) -> float:
    """Max deviation of a 4x4 (or 3x4) matrix from a rigid transform (inf for non-finite input)."""
    m = np.asarray(mat, np.float64)
    if not np.isfinite(m).all():
        return math.inf
    rot = m[:3, :3]
    err = np.abs(rot @ rot.T - np.eye(3)).max()
    err = max(err, abs(np.linalg.det(rot) - 1.0))
    if m.shape[0] == 4:
        err = max(err, np.abs(m[3] - np.array([0.0, 0.0, 0.0, 1.0])).max())
    return float(err)


def check_pose(mat: np.ndarray, where: str, what: str = "pose", tol: float = 1e-3) -> np.ndarray:
    """Raise ``SceneError`` (message starts with ``where``) unless ``mat`` is a finite rigid 4x4 transform."""
    m = np.asarray(mat, np.float64)
    if m.shape != (4, 4):
        raise SceneError(f"{where}: {what} must be a 4x4 matrix, got shape {m.shape}")
    if not np.isfinite(m).all():
        raise SceneError(f"{where}: {what} contains NaN or inf")
    err = rigid_error(m)
    if err > tol:
        raise SceneError(f"{where}: {what} is not a rigid transform (rotation not orthonormal with det +1 "
                         f"or bottom row not [0,0,0,1]; error {err:.3g})")
    return m


def check_intrinsics(K: np.ndarray, where: str) -> np.ndarray:
    """Raise ``SceneError`` unless ``K`` is a finite 3x3 pinhole matrix with positive focal lengths."""
    K = np.asarray(K, np.float64)
    if K.shape != (3, 3):
        raise SceneError(f"{where}: intrinsics must be 3x3, got shape {K.shape}")
    if not np.isfinite(K).all():
        raise SceneError(f"{where}: intrinsics contain NaN or inf")
    if K[0, 0] <= 0 or K[1, 1] <= 0:
        raise SceneError(f"{where}: focal lengths must be positive (fx={K[0, 0]:.6g}, fy={K[1, 1]:.6g})")
    return K


def pinhole(fx: float, fy: float, cx: float, cy: float) -> np.ndarray:
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]], dtype=np.float64)


def invert_rigid(mat: np.ndarray) -> np.ndarray:
    """Inverse of rigid 4x4 transforms (``(...,4,4)``), exact up to rounding."""
    m = np.asarray(mat, np.float64)
    rot_t = np.swapaxes(m[..., :3, :3], -1, -2)
    out = np.zeros_like(m)
    out[..., :3, :3] = rot_t
    out[..., :3, 3] = -(rot_t @ m[..., :3, 3:4])[..., 0]
    out[..., 3, 3] = 1.0
    return out


def camera_centres(world_to_camera: np.ndarray) -> np.ndarray:
    """Camera centres in world coordinates, ``(V,3)``."""
    return invert_rigid(world_to_camera)[:, :3, 3]


# ----------------------------------------------------------------------------------------------
# Initial point clouds for formats without one
# ----------------------------------------------------------------------------------------------
def random_points_in_box(n: int, lo: Iterable[float], hi: Iterable[float],
                         seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` uniform points in the axis-aligned box ``[lo, hi]`` with uniform random colours (seeded)."""
    rng = np.random.default_rng(seed)
    lo_a, hi_a = np.asarray(list(lo), np.float64), np.asarray(list(hi), np.float64)
    xyz = rng.uniform(lo_a, hi_a, size=(int(n), 3)).astype(np.float32)
    rgb = rng.integers(0, 256, size=(int(n), 3), dtype=np.uint8)
    return xyz, rgb


def random_points_in_sphere(n: int, radius: float = 1.0, centre: Iterable[float] = (0.0, 0.0, 0.0),
                            seed: int = 0) -> np.ndarray:
    """``n`` points uniform in a ball (seeded), float32 ``(n,3)``."""
    rng = np.random.default_rng(seed)
    d = rng.normal(size=(int(n), 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True) + 1e-12
    r = radius * rng.uniform(0.0, 1.0, size=(int(n), 1)) ** (1.0 / 3.0)
    return (np.asarray(list(centre), np.float64) + d * r).astype(np.float32)


def project(points: np.ndarray, K: np.ndarray, w2c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates ``(P,2)`` and camera z ``(P,)`` of world points in one view."""
    cam = points.astype(np.float64) @ w2c[:3, :3].T + w2c[:3, 3]
    z = cam[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        uv = (cam[:, :2] / z[:, None]) * np.array([K[0, 0], K[1, 1]]) + np.array([K[0, 2], K[1, 2]])
    return uv, z


def colour_points(points: np.ndarray, images: np.ndarray, intrinsics: np.ndarray, world_to_camera: np.ndarray,
                  views: Sequence[int] | None = None, seed: int = 0) -> np.ndarray:
    """Colour of each point from the first view (in a seeded random order of ``views``) it projects into
    (in front of the camera, inside the image); points seen by none get random colours."""
    rng = np.random.default_rng(seed)
    views = list(range(len(images))) if views is None else list(views)
    rgb = rng.integers(0, 256, size=(len(points), 3), dtype=np.uint8)
    todo = np.ones(len(points), bool)
    h, w = images.shape[1:3]
    for v in rng.permutation(views):
        if not todo.any():
            break
        idx = np.where(todo)[0]
        uv, z = project(points[idx], intrinsics[v], world_to_camera[v])
        ok = (z > 1e-6) & (uv[:, 0] >= 0) & (uv[:, 0] < w) & (uv[:, 1] >= 0) & (uv[:, 1] < h)
        ui, vi = uv[ok, 0].astype(int), uv[ok, 1].astype(int)
        rgb[idx[ok]] = images[v, vi, ui]
        todo[idx[ok]] = False
    return rgb
