"""Ingest stage: read a scene (synthetic, COLMAP, NeRF-json, ScanNet, LLFF, IDR) into a ``scene`` store."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Mapping

from stages.lib.cli import run_stage, stage_parser
from stages.lib.scene import SceneData


def load_source(reader: str, path: str | None, options: Mapping[str, Any]) -> SceneData:
    """Build the in-memory scene for a reader name; ``synthetic`` generates one from its options."""
    if reader == "synthetic":
        from stages.lib.synthetic import SyntheticConfig, make_scene

        return make_scene(SyntheticConfig(**options))
    from stages.lib.readers import read_scene

    if not path:
        raise FileNotFoundError(f"reader {reader!r} needs a path to the scene folder")
    return read_scene(reader, Path(path), **options)


def main(args: argparse.Namespace) -> None:
    scene = load_source(args.reader, args.path, args.params)
    scene.write(args.out, stage="ingest", params={"reader": args.reader, "path": args.path, **args.params},
                dataset=args.dataset, scene=args.scene, reader=args.reader)


def parser() -> argparse.ArgumentParser:
    p = stage_parser("ingest", __doc__)
    p.add_argument("--reader", required=True, help="synthetic | colmap | nerf_json | scannet | llff | idr | lerf_ovs | "
                   "3dovs | lerf_mask | replica | nvos | spin_nerf")
    p.add_argument("--path", default=None, help="scene folder (not used by the synthetic reader)")
    p.add_argument("--dataset", required=True)
    p.add_argument("--scene", required=True)
    p.add_argument("--out", required=True, help="output scene store (.zarr)")
    return p


if __name__ == "__main__":
    run_stage(main, parser())
