"""A fake ``python3`` first on PATH, for tests of the bench shell scripts: it answers the scripts' torch query and
logs every other call (GPU, sharing count and arguments) instead of running a bench; the room's calls go to
``room_calls.txt``."""

import os
import stat
from pathlib import Path

FAKE_PYTHON = """#!/bin/sh
case "$*" in
  *device_count*) echo 2 ;;
  *bench.room*) mkdir -p results/bench_room; echo "$*" >> room_calls.txt ;;
  *) echo "$CUDA_VISIBLE_DEVICES $BENCH_CONCURRENT $*" >> calls.txt ;;
esac
"""


def fake_python_env(tmp_path: Path, visible: str | None) -> dict[str, str]:
    """The environment that runs a script with the fake ``python3`` and the given CUDA_VISIBLE_DEVICES (None: unset);
    its calls land in ``calls.txt`` of the working directory."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "python3"
    fake.write_text(FAKE_PYTHON)
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    env.pop("CUDA_VISIBLE_DEVICES", None)
    if visible is not None:
        env["CUDA_VISIBLE_DEVICES"] = visible
    return env
