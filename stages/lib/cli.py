"""What every stage's command line shares: JSON parameters, logging, device choice, error reporting."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Callable, Mapping, TypeVar

import torch

from stages.lib.stage_cost import logged_cost

log = logging.getLogger("stages")
Config = TypeVar("Config")


def stage_parser(stage: str, doc: str | None) -> argparse.ArgumentParser:
    """An argument parser with the shared ``--params`` (JSON) and ``--device`` options."""
    parser = argparse.ArgumentParser(prog=f"python -m stages.{stage}", description=(doc or "").strip(),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", type=json.loads, default={},
                        help="stage parameters as a JSON object (the rule passes its config block)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda[:i] (auto: the GPU the scheduler "
                                                         "assigned through CUDA_VISIBLE_DEVICES, else CPU)")
    return parser


@dataclass
class StageCall:
    """What a generic stage hands to the method piece it runs (see ``stages.methods``).

    ``inputs``: every input store the stage got, {input name: path} (``scene`` included where given);
    ``params``: the stage's whole JSON parameters (the store's provenance); ``options``: the piece's own parameters
    (``params`` without the key that chose the piece); ``weights_dir``: where model checkpoints live (None:
    ``$OVGS_WEIGHTS`` or ``weights/``), for pieces that run 2D models.
    """

    stage: str
    inputs: dict[str, str]
    params: dict[str, Any]
    options: dict[str, Any]
    device: torch.device
    out: Path
    weights_dir: str | None = None

    def require(self, *names: str) -> list[str]:
        """The paths of inputs this piece cannot run without; a clear error naming the missing ones."""
        missing = [n for n in names if self.inputs.get(n) is None]
        if missing:
            raise ValueError(f"{self.stage}: this method needs the input stores {missing} (name their stages in the "
                             f"variant's after: block); it got {sorted(k for k, v in self.inputs.items() if v)}")
        return [self.inputs[n] for n in names]


def stage_inputs(args: argparse.Namespace, names: list[str]) -> dict[str, str]:
    """{input name: path} of the given store arguments that were passed (optional inputs may be absent)."""
    return {name: getattr(args, name) for name in names if getattr(args, name, None) is not None}


def pick_device(requested: str = "auto") -> torch.device:
    """The device to run on; logs which one and why."""
    if requested == "auto":
        if torch.cuda.is_available():
            device = torch.device("cuda")
            log.info("device: %s (%s; CUDA_VISIBLE_DEVICES=%s)", device, torch.cuda.get_device_name(0),
                     os.environ.get("CUDA_VISIBLE_DEVICES", "<unset>"))
        else:
            device = torch.device("cpu")
            log.info("device: cpu (no CUDA device visible; using the CPU path)")
    else:
        device = torch.device(requested)
    if device.type == "cpu":
        # Multi-threaded CPU scatter/index-add kernels accumulate in thread order; the deterministic ones do not.
        torch.use_deterministic_algorithms(True)
    return device


def config_from_params(cls: type[Config], params: Mapping[str, Any], what: str | None = None) -> Config:
    """A config dataclass from a stage's JSON params; unknown keys are an error naming them (and ``what``)."""
    known = {f.name for f in fields(cls)}
    unknown = set(params) - known
    if unknown:
        raise ValueError(f"unknown {what or cls.__name__} parameters {sorted(unknown)}; known: {sorted(known)}")
    return cls(**params)


def run_stage(main: Callable[[argparse.Namespace], Any], parser: argparse.ArgumentParser,
              argv: list[str] | None = None) -> None:
    """Parse arguments, configure logging and run ``main``; input, parameter and OS errors exit with status 1 and a
    one-line message (no traceback). Outputs are written atomically (``stages.lib.store``), so none is left. The run's
    wall time and peak memory end the log (``stages.lib.stage_cost``)."""
    from stages.lib.gs_trainer import NonFiniteError
    from stages.lib.scene import SceneError
    from stages.lib.store import StoreError

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = parser.parse_args(argv)
    log.info("%s %s", parser.prog, json.dumps(args.params, sort_keys=True))
    log.info("torch threads: %d (OMP_NUM_THREADS=%s)", torch.get_num_threads(), os.environ.get("OMP_NUM_THREADS"))
    try:
        with logged_cost(log, parser.prog.rsplit(".", 1)[-1]):
            main(args)
    except (SceneError, StoreError, NonFiniteError, OSError, ValueError) as exc:
        message = one_line_error(exc)
        log.error("%s", message)
        sys.exit(f"error: {message}")


def one_line_error(exc: BaseException) -> str:
    """The error as one line; an OS error (permissions, full disk, missing folder) names its file(s) first."""
    if isinstance(exc, OSError) and exc.filename is not None:
        files = f"{exc.filename} -> {exc.filename2}" if exc.filename2 is not None else f"{exc.filename}"
        text = f"{files}: {exc.strerror or exc}"
    else:
        text = str(exc) or type(exc).__name__
    return " ".join(text.split())
