"""Contract tests for the Zarr store layer: validation on read, atomic writes, half-written stores."""

import json
import multiprocessing as mp
import os
import signal
import time

import numpy as np
import pytest
import zarr

from stages.lib.store import (
    STORES,
    StoreError,
    read_store,
    store_fingerprint,
    write_store,
)


def write_metrics(path, n=3, params=None):
    with write_store("render_metrics", path, "test", params or {"a": 1}) as w:
        w.write("view", np.arange(n, dtype=np.int32))
        w.write("psnr", np.full(n, 30, np.float32))
        w.write("ssim", np.full(n, 0.9, np.float32))
        w.attrs.update(mean_psnr=30.0, mean_ssim=0.9)


def test_round_trip_with_provenance(tmp_path):
    path = tmp_path / "m.zarr"
    write_metrics(path)
    store = read_store("render_metrics", path)
    assert store.sizes == {"T": 3}
    prov = store.attrs["provenance"]
    assert prov["stage"] == "test" and prov["params"] == {"a": 1} and len(prov["fingerprint"]) == 16
    assert "package_version" in prov and "slurm_job_id" in prov
    assert [p.name for p in tmp_path.iterdir()] == ["m.zarr"]


def test_fingerprint_depends_on_params_and_content(tmp_path):
    write_metrics(tmp_path / "a.zarr")
    write_metrics(tmp_path / "b.zarr")
    write_metrics(tmp_path / "c.zarr", params={"a": 2})
    write_metrics(tmp_path / "d.zarr", n=4)
    fps = [store_fingerprint(tmp_path / f"{x}.zarr") for x in "abcd"]
    assert fps[0] == fps[1] and len(set(fps)) == 3


def test_inputs_fingerprints_recorded(tmp_path):
    write_metrics(tmp_path / "a.zarr")
    with write_store("render_metrics", tmp_path / "b.zarr", "test", {}, {"src": tmp_path / "a.zarr"}) as w:
        for k in ("view", "psnr", "ssim"):
            w.write(k, np.zeros(1, np.int32 if k == "view" else np.float32))
        w.attrs.update(mean_psnr=0, mean_ssim=0)
    prov = read_store("render_metrics", tmp_path / "b.zarr").attrs["provenance"]
    assert prov["inputs"]["src"]["fingerprint"] == store_fingerprint(tmp_path / "a.zarr")


def test_exception_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError):
        with write_store("render_metrics", tmp_path / "m.zarr", "test", {}) as w:
            w.write("view", np.arange(3, dtype=np.int32))
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_missing_array_and_wrong_dtype_and_mismatched_dims_rejected_at_write(tmp_path):
    with pytest.raises(StoreError, match="required array 'ssim' is missing"):
        with write_store("render_metrics", tmp_path / "m.zarr", "test", {}) as w:
            w.write("view", np.arange(3, dtype=np.int32))
            w.write("psnr", np.zeros(3, np.float32))
            w.attrs.update(mean_psnr=0, mean_ssim=0)
    with pytest.raises(StoreError, match="dtype float64"):
        with write_store("render_metrics", tmp_path / "m.zarr", "test", {}) as w:
            w.write("psnr", np.zeros(3))
    with pytest.raises(StoreError, match="T=4 disagrees"):
        with write_store("render_metrics", tmp_path / "m.zarr", "test", {}) as w:
            w.write("view", np.arange(3, dtype=np.int32))
            w.write("psnr", np.zeros(4, np.float32))
            w.write("ssim", np.zeros(3, np.float32))
            w.attrs.update(mean_psnr=0, mean_ssim=0)
    assert list(tmp_path.iterdir()) == []


def test_reader_names_store_and_array(tmp_path):
    path = tmp_path / "m.zarr"
    write_metrics(path)
    with pytest.raises(StoreError, match="expected a 'scene' store"):
        read_store("scene", path)
    # Corrupt the dtype of one array in place: the reader names it.
    g = zarr.open_group(str(path), mode="a")
    del g["ssim"]
    g.create_array("ssim", shape=(3,), dtype="float64")
    with pytest.raises(StoreError, match=r"m\.zarr/ssim: dtype float64"):
        read_store("render_metrics", path)
    with pytest.raises(StoreError, match="does not exist"):
        read_store("render_metrics", tmp_path / "nope.zarr")


def test_store_without_complete_flag_is_rejected(tmp_path):
    path = tmp_path / "m.zarr"
    write_metrics(path)
    g = zarr.open_group(str(path), mode="a")
    g.attrs["complete"] = False
    with pytest.raises(StoreError, match="incomplete"):
        read_store("render_metrics", path)


def _slow_writer(path):
    with write_store("scene", path, "test", {}) as w:
        arr = w.create("images", (1000, 8, 8, 3))
        for i in range(1000):
            arr[i] = np.full((8, 8, 3), i % 255, np.uint8)
            time.sleep(0.01)


def test_killed_writer_never_yields_a_complete_store(tmp_path):
    path = tmp_path / "scene.zarr"
    proc = mp.get_context("spawn").Process(target=_slow_writer, args=(path,))
    proc.start()
    deadline = time.time() + 60
    while not any(p.name.startswith("scene.zarr.partial-") for p in tmp_path.iterdir()):
        assert time.time() < deadline, "writer never started"
        time.sleep(0.05)
    time.sleep(0.5)
    os.kill(proc.pid, signal.SIGKILL)
    proc.join()
    assert not path.exists()
    with pytest.raises(StoreError, match="does not exist"):
        read_store("scene", path)
    partial = next(tmp_path.iterdir())
    with pytest.raises(StoreError, match="incomplete"):
        read_store("scene", partial)


def test_every_store_kind_declares_dtypes_and_dims():
    for kind, spec in STORES.items():
        assert spec.doc, kind
        for name, a in spec.arrays.items():
            np.dtype(a.dtype)
            assert a.chunks is None or len(a.chunks) == len(a.dims), (kind, name)
    json.dumps({k: list(v.arrays) for k, v in STORES.items()})
