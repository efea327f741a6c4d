"""What the Beam pipeline tests share: runner arguments, a local Dask cluster, file digests.

Each pipeline test runs its input once per runner and compares every output byte with the
one-machine (or in-process) run: the DirectRunner in this process, the DirectRunner over
worker processes, and Beam's Dask runner on a two-worker `distributed.LocalCluster` bound
to 127.0.0.1 that the test starts and stops.
"""

import contextlib
import hashlib

import pytest

IN_PROCESS = ["--direct_running_mode=in_memory"]
MULTI_PROCESS = ["--direct_running_mode=multi_processing", "--direct_num_workers=2"]
# The name `DaskRunner` alone is not registered with Beam: the full path is.
DASK_RUNNER = "apache_beam.runners.dask.dask_runner.DaskRunner"


@contextlib.contextmanager
def dask_cluster(workers: int = 2):
    """Yields the Beam arguments that run a pipeline on a local Dask cluster of `workers`
    single-threaded worker processes (skips the test without `distributed`)."""
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        host="127.0.0.1",
        n_workers=workers,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
    ) as cluster:
        yield ["--runner", DASK_RUNNER, "--dask_client_address", cluster.scheduler_address]


def file_digests(folder):
    """`{relative path: sha256}` of every file under `folder` (hidden ones included)."""
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }
