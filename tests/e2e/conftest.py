"""The module-scoped real cluster of the end-to-end tests (see support/e2e_cluster.py)."""

from __future__ import annotations

from collections.abc import Generator, Iterator

import pytest
from support.e2e_cluster import Cluster, running_cluster


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with running_cluster(tmp_path_factory.mktemp("cluster") / "data") as started:
        yield started


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item) -> Generator[None, object, None]:
    """A failed test's report carries the cluster's logs and the executors' stderr: an e2e
    failure in CI is otherwise a bare assertion about a process nobody can look at."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    cluster = getattr(item, "funcargs", {}).get("cluster")
    if report.failed and isinstance(cluster, Cluster):
        report.sections.append(("cluster logs", cluster.diagnostics()))
