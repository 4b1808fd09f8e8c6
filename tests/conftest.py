"""Test-wide settings: a fixed torch thread count and deterministic kernels, so in-process CPU training is
reproducible run to run, as the stages make it (``stages.lib.cli.pick_device``; the DAG's jobs get their thread
count from the rule's ``threads``, which Snakemake exports as OMP_NUM_THREADS). The tiny room's RGB Gaussians are
trained once per session and copied into the DAG tests (``seed_tiny_gaussians``); the end-to-end tests of CCL-LGS,
SAGA, Proto-SaGa / Gaga and SAS read one DAG run of the four (``methods_run``).

``make test`` runs the suite in one process; ``make test PYTEST_ARGS="-n 2 --dist loadgroup"`` runs it on two
pytest-xdist workers: each test module is one group (its module fixtures are built once), the four modules reading
``methods_run`` are one group scheduled first (the longest piece of work), and ``tiny_gaussians`` is trained once for
all workers (``shared_build``)."""

import os

import pytest
import torch
import yaml
from filelock import FileLock
from workflow_runner import methods_config, seed_tiny_gaussians, snakemake, train_tiny_gaussians

TEST_THREADS = 2
torch.set_num_threads(TEST_THREADS)
torch.use_deterministic_algorithms(True)
# The modules reading the shared methods DAG run (``methods_run``): one xdist group, so it runs once.
METHODS_RUN_MODULES = ("test_ccl_workflow.py", "test_protosaga_workflow.py", "test_saga_workflow.py",
                       "test_sas_workflow.py")


def pytest_collection_modifyitems(config, items):
    """Every test reading ``methods_run`` lives in one of ``METHODS_RUN_MODULES`` (they are scheduled as one group);
    on pytest-xdist workers those modules go first, file order kept."""
    strays = {item.path.name for item in items if "methods_run" in item.fixturenames} - set(METHODS_RUN_MODULES)
    if strays:
        raise pytest.UsageError(f"{sorted(strays)} read methods_run: add them to tests/conftest.py METHODS_RUN_MODULES")
    if "PYTEST_XDIST_WORKER" in os.environ:
        items.sort(key=lambda item: item.path.name not in METHODS_RUN_MODULES)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """``--dist loadgroup`` with each test module as a group unless it names another with an ``xdist_group`` mark, and
    the ``METHODS_RUN_MODULES`` as the group ``methods_run``. (pytest-xdist's own loadgroup reads the group from a
    suffix it writes into the test ids, which pytest 9.2 no longer lets a plugin change.)"""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadGroupScheduling

    class ModuleGroupScheduling(LoadGroupScheduling):
        def _split_scope(self, nodeid):
            scope = super()._split_scope(nodeid)
            if scope != nodeid:  # an xdist_group mark
                return scope
            module = nodeid.split("::", 1)[0]
            return "methods_run" if module.rsplit("/", 1)[-1] in METHODS_RUN_MODULES else module

    config.option.loadscopereorder = False  # collection order: the methods_run group first
    return ModuleGroupScheduling(config, log)


def shared_build(tmp_path_factory, name, build):
    """``build(folder)`` once per test run: in a plain run into a new temporary folder; under pytest-xdist into one
    folder beside the workers' own, under a file lock, so the first worker to need it builds it and the others read
    it (a marker file records a finished build)."""
    if "PYTEST_XDIST_WORKER" not in os.environ:
        return build(tmp_path_factory.mktemp(name))
    folder = tmp_path_factory.getbasetemp().parent / name
    with FileLock(f"{folder}.lock"):
        done = folder / ".built"
        if not done.exists():
            folder.mkdir(exist_ok=True)
            result = build(folder)
            done.write_text(str(result))
        return type(folder)(done.read_text())


@pytest.fixture(autouse=True)
def keep_torch_threads():
    """Every test starts at the session's thread count, also after one that changed it (the spconv backend drops
    torch to one CPU thread, see stages/lib/sparse_conv/spconv_backend.py)."""
    yield
    torch.set_num_threads(TEST_THREADS)


@pytest.fixture(scope="session")
def tiny_gaussians(tmp_path_factory):
    """A results folder holding the tiny room's scene and ``tiny`` RGB Gaussians (tests/config/tiny.yaml), trained
    once for all workers."""
    return shared_build(tmp_path_factory, "tiny_gaussians", lambda folder: train_tiny_gaussians(folder / "results"))


@pytest.fixture(scope="session")
def methods_run(tmp_path_factory, tiny_gaussians):
    """One DAG run of the CCL-LGS, SAGA, Proto-SaGa / Gaga and SAS recipes on the tiny room
    (``workflow_runner.methods_config``) from the session's RGB Gaussians: the methods' independent jobs run side by
    side on the two cores, and the report is written once. Returns the results folder and the config file."""
    root = tmp_path_factory.mktemp("methods")
    configfile = root / "methods.yaml"
    configfile.write_text(yaml.safe_dump(methods_config()))
    seed_tiny_gaussians(root / "results", tiny_gaussians)
    snakemake(root / "results", configfile=configfile, timeout=2400)
    return root / "results", configfile
