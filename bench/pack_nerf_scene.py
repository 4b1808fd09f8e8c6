"""Copy a NeRF-json scene with its images re-encoded as lossless WebP (pixel-identical, ~30% smaller).

Used to carry a real scene to a remote GPU machine with a small upload limit:
    python -m bench.pack_nerf_scene ../shared/data/lego/data/nerf_synthetic/lego .bench-data/lego
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm


def pack(src: Path, dst: Path) -> None:
    for split_file in sorted(src.glob("transforms_*.json")):
        meta = json.loads(split_file.read_text())
        for frame in tqdm(meta["frames"], desc=split_file.name):
            rel = frame["file_path"]
            image = src / (rel if Path(rel).suffix else rel + ".png")
            out_rel = str(Path(rel).with_suffix(".webp"))
            out = dst / out_rel
            out.parent.mkdir(parents=True, exist_ok=True)
            pixels = Image.open(image)
            pixels.save(out, "WEBP", lossless=True, exact=True, quality=100, method=4)
            if not np.array_equal(np.asarray(Image.open(out)), np.asarray(pixels)):
                raise RuntimeError(f"{out}: lossless re-encoding changed pixels")
            frame["file_path"] = out_rel
        (dst / split_file.name).write_text(json.dumps(meta, indent=1))


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("src", type=Path)
    p.add_argument("dst", type=Path)
    a = p.parse_args()
    pack(a.src, a.dst)
