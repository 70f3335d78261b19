"""Pieces of the legacy documents (api/state_json.py)."""

from __future__ import annotations

import orjson
import pytest

from meseta.api import state_json as sj
from meseta.proto.mesos.v1 import mesos_pb2


def labels(*pairs: tuple[str, str | None]) -> mesos_pb2.Labels:
    message = mesos_pb2.Labels()
    for key, value in pairs:
        label = message.labels.add(key=key)
        if value is not None:
            label.value = value
    return message


def test_label_fragments_equal_the_labels_and_are_shared() -> None:
    message = labels(("team", "read-side"), ("flag", None))
    document = orjson.loads(orjson.dumps({"labels": sj.labels_json(message)}))
    assert document["labels"] == [{"key": "team", "value": "read-side"}, {"key": "flag"}]
    assert sj.labels_json(labels(("team", "read-side"), ("flag", None))) is sj.labels_json(message)


def test_label_fragments_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sj, "_LABELS", {})
    monkeypatch.setattr(sj, "MAX_LABEL_SETS", 3)
    for number in range(10):
        sj.labels_json(labels(("n", str(number))))
        assert len(sj._LABELS) <= 3
