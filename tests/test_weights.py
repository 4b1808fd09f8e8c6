"""Weights registry: hash checks, the lock file (hash cache and pins), fetch over file:// URLs, verify's table."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
import yaml

from stages import weights as cli
from stages.lib import weights as W

GOOD = b"pretend checkpoint\n" * 100
UNPUBLISHED = b"no hash was ever published for me\n"
DIR_FILES = {"model_index.json": b'{"a": 1}\n', "unet/weights.bin": b"\x00\x01" * 500}


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def env(tmp_path: Path) -> dict:
    """A source folder served as file:// URLs, a registry YAML describing it, and an empty weights dir."""
    src = tmp_path / "src"
    (src / "sd" / "unet").mkdir(parents=True)
    (src / "good.pth").write_bytes(GOOD)
    (src / "plain.pt").write_bytes(UNPUBLISHED)
    for rel, data in DIR_FILES.items():
        (src / "sd" / rel).write_bytes(data)
    models = {
        "good": {"family": "sam", "arch": "vit_b", "filename": "sam/good.pth", "url": (src / "good.pth").as_uri(),
                 "sha256": sha(GOOD), "note": "known hash"},
        "plain": {"family": "sam2", "arch": "cfg.yaml", "filename": "sam2/plain.pt",
                  "url": (src / "plain.pt").as_uri(), "sha256": None, "note": "no published hash"},
        "wrong": {"family": "sam", "arch": "vit_b", "filename": "sam/wrong.pth", "url": (src / "good.pth").as_uri(),
                  "sha256": "0" * 64, "note": "registry hash does not match the source"},
        "sd": {"family": "diffusers", "arch": "repo/id", "filename": "sd", "url": (src / "sd").as_uri() + "/",
               "sha256": None, "note": "directory",
               "files": {"model_index.json": None, "unet/weights.bin": sha(DIR_FILES["unet/weights.bin"])}},
    }
    registry = tmp_path / "weights.yaml"
    registry.write_text(yaml.safe_dump({"models": models}))
    weights = tmp_path / "weights"
    weights.mkdir()
    return {"registry": registry, "reg": W.load_registry(registry), "weights": weights, "src": src}


def run_cli(env: dict, *args: str) -> int:
    return cli.main([*args, "--weights-dir", str(env["weights"]), "--registry", str(env["registry"]),
                     "--no-progress"])


def place(env: dict, rel: str, data: bytes) -> Path:
    path = env["weights"] / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_missing_file_names_file_hash_fetch_command_and_url(env):
    with pytest.raises(W.WeightsError) as err:
        W.resolve_checkpoint("good", env["weights"], env["reg"])
    msg = str(err.value)
    assert isinstance(err.value, FileNotFoundError)
    assert str(env["weights"] / "sam/good.pth") in msg and "missing" in msg
    assert sha(GOOD) in msg
    assert f"python -m stages.weights fetch good --weights-dir {env['weights']}" in msg
    assert (env["src"] / "good.pth").as_uri() in msg


def test_wrong_hash_is_rejected_with_both_hashes(env):
    place(env, "sam/good.pth", b"truncated")
    with pytest.raises(W.WeightsError) as err:
        W.resolve_checkpoint("good", env["weights"], env["reg"])
    assert sha(b"truncated") in str(err.value) and sha(GOOD) in str(err.value)


def test_correct_hash_resolves_to_the_file(env):
    path = place(env, "sam/good.pth", GOOD)
    assert W.resolve_checkpoint("good", env["weights"], env["reg"]) == path


def test_unknown_model_lists_known_names(env):
    with pytest.raises(W.WeightsError, match="known: good, plain, sd, wrong"):
        W.resolve_checkpoint("nope", env["weights"], env["reg"])


def test_hash_is_cached_by_size_and_mtime(env, monkeypatch):
    path = place(env, "sam/good.pth", GOOD)
    calls: list[Path] = []
    real = W.sha256_file
    monkeypatch.setattr(W, "sha256_file", lambda p: calls.append(p) or real(p))
    W.resolve_checkpoint("good", env["weights"], env["reg"])
    W.resolve_checkpoint("good", env["weights"], env["reg"])
    assert calls == [path]
    entry = json.loads((env["weights"] / W.LOCK_NAME).read_text())["hashes"]["sam/good.pth"]
    assert entry == {"sha256": sha(GOOD), "size": len(GOOD), "mtime_ns": path.stat().st_mtime_ns}
    path.write_bytes(GOOD[:-1] + b"?")  # same size, new content and mtime
    os.utime(path, ns=(entry["mtime_ns"] + 10**9, entry["mtime_ns"] + 10**9))
    with pytest.raises(W.WeightsError, match="has SHA-256"):
        W.resolve_checkpoint("good", env["weights"], env["reg"])
    assert len(calls) == 2


def test_unpublished_hash_is_pinned_then_enforced(env):
    path = place(env, "sam2/plain.pt", UNPUBLISHED)
    assert W.resolve_checkpoint("plain", env["weights"], env["reg"]) == path
    assert json.loads((env["weights"] / W.LOCK_NAME).read_text())["pins"] == {"sam2/plain.pt": sha(UNPUBLISHED)}
    path.write_bytes(b"swapped")
    with pytest.raises(W.WeightsError) as err:
        W.resolve_checkpoint("plain", env["weights"], env["reg"])
    assert sha(UNPUBLISHED) in str(err.value)


def test_fetch_downloads_verifies_and_renames(env):
    assert run_cli(env, "fetch", "good") == 0
    path = env["weights"] / "sam/good.pth"
    assert path.read_bytes() == GOOD
    assert not list(env["weights"].rglob("*.partial"))
    assert W.resolve_checkpoint("good", env["weights"], env["reg"]) == path


def test_fetch_keeps_nothing_when_the_download_hash_differs(env):
    with pytest.raises(SystemExit, match="error: download of .* has SHA-256"):
        run_cli(env, "fetch", "wrong")
    assert not (env["weights"] / "sam").exists() or not list((env["weights"] / "sam").iterdir())


def test_fetch_pins_the_hash_of_unpublished_files(env):
    run_cli(env, "fetch", "plain")
    pins = json.loads((env["weights"] / W.LOCK_NAME).read_text())["pins"]
    assert pins == {"sam2/plain.pt": sha(UNPUBLISHED)}


def test_fetch_directory_model(env):
    run_cli(env, "fetch", "sd")
    root = W.resolve_checkpoint("sd", env["weights"], env["reg"])
    assert root == env["weights"] / "sd"
    assert {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()} == DIR_FILES


def test_fetch_skips_files_already_verified(env, monkeypatch):
    place(env, "sam/good.pth", GOOD)
    monkeypatch.setattr(cli, "download", lambda *a, **k: pytest.fail("downloaded a verified file"))
    assert run_cli(env, "fetch", "good") == 0


def test_verify_table_and_exit_codes(env, capsys):
    place(env, "sam/good.pth", GOOD)
    assert run_cli(env, "verify", "good") == 0
    assert run_cli(env, "verify") == 0  # missing models are only reported when not named
    out = capsys.readouterr().out
    assert "missing" in out and "ok" in out
    assert run_cli(env, "verify", "good", "plain") == 1  # a named model is missing
    place(env, "sam/good.pth", b"corrupt")
    assert run_cli(env, "verify") == 1
    assert "bad" in capsys.readouterr().out


def test_list_prints_every_entry(env, capsys):
    assert run_cli(env, "list") == 0
    out = capsys.readouterr().out
    assert all(name in out for name in ("good", "plain", "wrong", "sd"))


def test_default_weights_dir_follows_env(monkeypatch, tmp_path):
    monkeypatch.setenv("OVGS_WEIGHTS", str(tmp_path))
    assert W.default_weights_dir() == tmp_path
    monkeypatch.delenv("OVGS_WEIGHTS")
    assert W.default_weights_dir() == W.PROJECT_ROOT / "weights"


def test_require_file_gives_the_fetch_command_for_known_files(tmp_path):
    with pytest.raises(W.WeightsError) as err:
        W.require_file(tmp_path / "sam" / "sam_vit_b_01ec64.pth")
    assert f"python -m stages.weights fetch sam_vit_b --weights-dir {tmp_path}" in str(err.value)
    with pytest.raises(W.WeightsError, match="does not exist"):
        W.require_file(tmp_path / "unknown.pth")


def test_registry_entry_validation(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"models": {"x": {"family": "sam", "arch": "vit_b", "filename": "x.pth",
                                                    "url": "u", "sha256": "abc", "note": "n"}}}))
    with pytest.raises(ValueError, match="not a SHA-256"):
        W.load_registry(bad)
    bad.write_text(yaml.safe_dump({"models": {"x": {"family": "sam", "arch": "vit_b", "filename": "x.pth",
                                                    "note": "n"}}}))
    with pytest.raises(ValueError, match="missing \\['url'\\]"):
        W.load_registry(bad)


def test_project_registry():
    reg = W.load_registry()
    assert set(reg) == {"sam_vit_h", "sam_vit_l", "sam_vit_b", "sam2.1_hiera_tiny", "sam2.1_hiera_small",
                        "sam2.1_hiera_base_plus", "sam2.1_hiera_large", "clip_vit_b16_laion2b",
                        "clip_convnext_base", "stable_diffusion"}
    assert reg["sam_vit_h"].sha256 == "a7bf3b02f3ebf1267aba913ff637d9a2d5c33d3173bb679e46d9f338c26f262e"
    assert {s.family for s in reg.values()} == set(W.FAMILIES)
    assert len({s.filename for s in reg.values()}) == len(reg)
    assert all(s.url.startswith("https://") for s in reg.values())
    assert reg["stable_diffusion"].is_directory and "unet/diffusion_pytorch_model.safetensors" in \
        reg["stable_diffusion"].files
