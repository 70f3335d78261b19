"""The module-scoped real cluster of the end-to-end tests (see support/e2e_cluster.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support.e2e_cluster import Cluster, running_cluster


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with running_cluster(tmp_path_factory.mktemp("cluster") / "data") as started:
        yield started
