"""Resource operations as the fold takes them: RESERVE, UNRESERVE, CREATE and DESTROY inside
ACCEPT or from an operator (apply_resource_operation)."""

from __future__ import annotations

from collections.abc import Sequence

from meseta.master.v1 import commands_pb2 as c
from meseta.proto.mesos.v1 import mesos_pb2 as m
from support.fold_cluster import Cluster, Operation


def reserve_op(resources: Sequence[m.Resource], op_id: str | None = None) -> m.Offer.Operation:
    operation = Operation(type=Operation.RESERVE)
    operation.reserve.resources.extend(resources)
    if op_id is not None:
        operation.id.value = op_id
    return operation


def unreserve_op(resources: Sequence[m.Resource]) -> m.Offer.Operation:
    operation = Operation(type=Operation.UNRESERVE)
    operation.unreserve.resources.extend(resources)
    return operation


def create_op(volumes: Sequence[m.Resource]) -> m.Offer.Operation:
    operation = Operation(type=Operation.CREATE)
    operation.create.volumes.extend(volumes)
    return operation


def destroy_op(volumes: Sequence[m.Resource]) -> m.Offer.Operation:
    operation = Operation(type=Operation.DESTROY)
    operation.destroy.volumes.extend(volumes)
    return operation


def operate(cluster: Cluster, agent: str, operation: m.Offer.Operation) -> list[object]:
    body = c.ApplyResourceOperation(agent_id=agent, operation=operation)
    return list(cluster.run(apply_resource_operation=body))
