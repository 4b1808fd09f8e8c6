"""Export a synthetic room as a ScanNet scan (the published layout that ``read_scannet`` reads).

    python -m stages.lib.synthetic.scannet_export --out data/scans --scan scene0901_00 \
        --options '{"seed": 1, "difficulty": "hard", "trajectory": "walk", "cloud": "surface", "num_views": 150,
                    "width": 640, "height": 480, "num_points": 168000, "device": "cuda"}'

writes ``<out>/<scan>/``: color/<i>.jpg, depth/<i>.png (16-bit mm), pose/<i>.txt (camera-to-world), intrinsic/,
label-filt/ and instance-filt/ PNGs, <scan>_vh_clean_2.ply and .labels.ply (the room's surface points as vertices),
<scan>.aggregation.json and <scan>_vh_clean_2.0.010000.segs.json (``stages.lib.readers.scannet_layout``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from stages.lib.readers.scannet import LABELS_PLY_SUFFIX
from stages.lib.readers.scannet_layout import write_scannet_scan
from stages.lib.synthetic import SyntheticConfig, make_scene

MESH_SUFFIX = "_vh_clean_2.ply"


def write_unlabelled_mesh(labels_ply: Path, out: Path) -> None:
    """ScanNet's ``_vh_clean_2.ply``: the labels mesh without its ``label`` vertex property."""
    from numpy.lib.recfunctions import repack_fields
    from plyfile import PlyData, PlyElement

    ply = PlyData.read(str(labels_ply))
    vertex = ply["vertex"].data
    names = [n for n in vertex.dtype.names if n != "label"]
    elements = [PlyElement.describe(repack_fields(vertex[names]), "vertex")] + [e for e in ply.elements if e.name != "vertex"]
    PlyData(elements, text=False).write(str(out))


def export(cfg: SyntheticConfig, root: str | Path, scan: str) -> Path:
    """Generate the room and write it as ``<root>/<scan>``; returns the scan folder."""
    folder = write_scannet_scan(make_scene(cfg), root, scan)
    write_unlabelled_mesh(folder / f"{scan}{LABELS_PLY_SUFFIX}", folder / f"{scan}{MESH_SUFFIX}")
    return folder


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, type=Path, help="folder that receives <scan>/")
    ap.add_argument("--scan", default="scene0900_00", help="scan name (scene%%04d_%%02d)")
    ap.add_argument("--options", type=json.loads, default={}, help="SyntheticConfig fields as JSON")
    args = ap.parse_args()
    print(export(SyntheticConfig(**args.options), args.out, args.scan))


if __name__ == "__main__":
    main()
