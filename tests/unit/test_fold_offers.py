"""Fold appliers for offers: create, accept (LAUNCH, LAUNCH_GROUP), decline, rescind (2.5)."""

from __future__ import annotations

import pytest
from support.fold_cluster import (
    NS_PER_S,
    Cluster,
    Operation,
    executor_info,
    names,
    of_type,
    one,
    resource_protos,
    task_info,
)

from meseta.master.events import (
    LaunchRequested,
    OfferRemoved,
    OffersCreated,
    OperationStatusUpdated,
    TaskAdded,
    TaskStatusUpdated,
)
from meseta.master.resources import parse
from meseta.master.v1 import commands_pb2 as c
from meseta.proto.mesos.v1 import mesos_pb2 as m

Reason = m.TaskStatus


# An agent with disk, which a task group's executor needs.
GROUP_AGENT = "cpus:4;mem:1024;disk:1024;ports:[31000-32000]"


def setup(
    *, partition_aware: bool = False, resources: str | None = None
) -> tuple[Cluster, str, str]:
    cluster = Cluster()
    agent = cluster.add_agent(resources=resources) if resources else cluster.add_agent()
    fid = cluster.add_framework(partition_aware=partition_aware)
    return cluster, agent, fid


def test_create_offers_books_resources_and_ids() -> None:
    cluster, agent, fid = setup()
    events = cluster.offer(fid, agent)
    created = one(events, OffersCreated)
    offer = created.offers[0]
    assert created.framework_id == fid
    assert offer.id == "C-O1" and offer.agent_id == agent and offer.role == "*"
    assert offer.resources == parse("cpus:4;mem:1024;ports:[31000-32000]")
    assert cluster.state.agents[agent].allocated == offer.resources
    # Totals over agents count scalars only (ranges cannot be summed across agents).
    assert cluster.state.frameworks[fid].allocated == {"*": parse("cpus:4;mem:1024")}
    assert cluster.state.role_allocated == {"*": parse("cpus:4;mem:1024")}


def test_create_offers_groups_decisions_per_framework() -> None:
    cluster = Cluster()
    a1, a2 = cluster.add_agent("h1"), cluster.add_agent("h2")
    f1, f2 = cluster.add_framework("one"), cluster.add_framework("two")
    decisions = [
        cluster.decision(f1, a1, resources="cpus:1"),
        cluster.decision(f2, a1, resources="cpus:1"),
        cluster.decision(f1, a2, resources="cpus:1"),
    ]
    created = of_type(cluster.create_offers(decisions), OffersCreated)
    assert [(e.framework_id, [o.agent_id for o in e.offers]) for e in created] == [
        (f1, [a1, a2]),
        (f2, [a1]),
    ]


def test_stale_decisions_are_skipped() -> None:
    cluster, agent, fid = setup()
    multi = cluster.add_framework("multi", roles=["a", "b"], suppressed_roles=["b"])
    gone = cluster.add_framework("gone", failover_timeout=60)
    cluster.disconnect_framework(gone)
    stale = [
        cluster.decision(gone, agent, resources="cpus:1"),  # inactive framework
        cluster.decision(multi, agent, role="b", resources="cpus:1"),  # suppressed role
        cluster.decision(multi, agent, role="c", resources="cpus:1"),  # not its role
        cluster.decision(fid, agent, resources="cpus:5"),  # more than available
        cluster.decision(fid, "no-such-agent", resources="cpus:1"),
        cluster.decision("no-such-framework", agent, resources="cpus:1"),
        cluster.decision(fid, agent, resources="cpus:0"),  # nothing
    ]
    assert cluster.create_offers(stale) == []
    assert not cluster.state.offers
    # Two decisions that together exceed the agent: the second is stale.
    both = [cluster.decision(fid, agent, resources="cpus:3")] * 2
    assert len(one(cluster.create_offers(both), OffersCreated).offers) == 1


def test_no_offers_on_a_disconnected_agent() -> None:
    cluster, agent, fid = setup()
    cluster.disconnect_agent(agent)
    assert cluster.offer(fid, agent, resources="cpus:1") == []


def test_create_offers_clears_dirty_agents_up_to_the_base_index() -> None:
    cluster, agent, _ = setup()
    assert agent in cluster.state.dirty_agents
    marked = cluster.state.dirty_agents[agent]
    cluster.run(create_offers=c.CreateOffers(base_index=marked - 1))
    assert agent in cluster.state.dirty_agents
    cluster.run(create_offers=c.CreateOffers(base_index=marked))
    assert agent not in cluster.state.dirty_agents


def test_accept_with_launch_stages_the_task_and_filters_the_leftover() -> None:
    cluster, agent, fid = setup()
    offer_id = cluster.add_offer(fid, agent)
    events = cluster.launch(fid, [offer_id], [task_info("t1", agent)])
    assert names(events) == ["OfferRemoved", "TaskAdded", "LaunchRequested"]
    assert one(events, OfferRemoved).reason == "accepted"
    task = one(events, TaskAdded).task
    assert task.state == m.TASK_STAGING and task.task_id == "t1"
    launch = one(events, LaunchRequested)
    assert (launch.agent_id, launch.framework_id, launch.group) == (agent, fid, False)
    assert launch.tasks[0].resources[0].allocation_info.role == "*"
    assert cluster.state.agents[agent].allocated == parse("cpus:1;mem:128")
    (key, refusal) = next(iter(cluster.state.frameworks[fid].filters.items()))
    assert key == (agent, "*")
    assert refusal.resources == parse("cpus:3;mem:896;ports:[31000-32000]")
    assert refusal.expires_ns == cluster.now_ns + 5 * NS_PER_S  # the default refuse_seconds


@pytest.mark.parametrize(
    ("refuse_seconds", "expected_ns"),
    [(0.0, None), (-1.0, 5 * NS_PER_S), (10.5, 10_500_000_000), (1e12, 365 * 24 * 3600 * NS_PER_S)],
)
def test_refuse_seconds_rules(refuse_seconds: float, expected_ns: int | None) -> None:
    cluster, agent, fid = setup()
    offer_id = cluster.add_offer(fid, agent)
    cluster.launch(fid, [offer_id], [task_info("t1", agent)], refuse_seconds=refuse_seconds)
    filters = cluster.state.frameworks[fid].filters
    if expected_ns is None:
        assert not filters
    else:
        assert filters[(agent, "*")].expires_ns == cluster.now_ns + expected_ns


def test_filter_expires_on_tick() -> None:
    cluster, agent, fid = setup()
    offer_id = cluster.add_offer(fid, agent)
    cluster.decline(fid, [offer_id], refuse_seconds=2)
    assert cluster.state.frameworks[fid].filters
    cluster.tick(1 * NS_PER_S)
    assert cluster.state.frameworks[fid].filters
    cluster.tick(1 * NS_PER_S)
    assert not cluster.state.frameworks[fid].filters
    assert agent in cluster.state.dirty_agents


@pytest.mark.parametrize(
    ("partition_aware", "expected_state"), [(False, m.TASK_LOST), (True, m.TASK_DROPPED)]
)
def test_invalid_offers_lose_or_drop_every_task(partition_aware: bool, expected_state: int) -> None:
    cluster, agent, fid = setup(partition_aware=partition_aware)
    offer_id = cluster.add_offer(fid, agent)
    cluster.rescind([offer_id])
    events = cluster.launch(fid, [offer_id], [task_info("t1", agent), task_info("t2", agent)])
    updates = of_type(events, TaskStatusUpdated)
    assert [u.task_id for u in updates] == ["t1", "t2"]
    for update in updates:
        assert update.state == expected_state
        assert update.status.reason == Reason.REASON_INVALID_OFFERS
        assert update.status.source == Reason.SOURCE_MASTER and not update.status.uuid
        assert "no longer valid" in update.status.message
    assert not cluster.state.frameworks[fid].tasks


def test_invalid_offers_discard_the_callers_other_offers_and_error_operations_with_ids() -> None:
    cluster = Cluster()
    a1, a2 = cluster.add_agent("h1"), cluster.add_agent("h2")
    fid = cluster.add_framework()
    o1 = cluster.add_offer(fid, a1, resources="cpus:1")
    o2 = cluster.add_offer(fid, a2, resources="cpus:1")
    reserve = Operation(type=Operation.RESERVE)
    reserve.id.value = "op-1"
    events = cluster.accept(fid, [o1, o2], [reserve])
    assert [(e.offer_id, e.reason) for e in of_type(events, OfferRemoved)] == [
        (o1, "discarded"),
        (o2, "discarded"),
    ]
    status = one(events, OperationStatusUpdated).status
    assert status.state == m.OPERATION_ERROR and status.operation_id.value == "op-1"
    assert "one single agent" in status.message
    assert not cluster.state.offers


@pytest.mark.parametrize(
    ("offer_ids", "fragment"),
    [([], "No offers specified"), (["X", "X"], "Duplicate offers"), (["nope"], "no longer valid")],
)
def test_offer_list_errors(offer_ids: list[str], fragment: str) -> None:
    cluster, agent, fid = setup()
    events = cluster.launch(fid, offer_ids, [task_info("t1", agent)])
    assert fragment in one(events, TaskStatusUpdated).status.message


def test_offer_of_another_framework_is_invalid() -> None:
    cluster, agent, fid = setup()
    other = cluster.add_framework("other")
    offer_id = cluster.add_offer(other, agent)
    events = cluster.launch(fid, [offer_id], [task_info("t1", agent)])
    assert "invalid framework" in one(events, TaskStatusUpdated).status.message
    assert offer_id in cluster.state.offers  # not the caller's to discard


def test_duplicate_task_ids_get_task_error() -> None:
    cluster, agent, fid = setup()
    offer_id = cluster.add_offer(fid, agent)
    events = cluster.launch(fid, [offer_id], [task_info("t1", agent), task_info("t1", agent)])
    assert one(events, TaskAdded).task.task_id == "t1"
    error = one(events, TaskStatusUpdated)
    assert error.state == m.TASK_ERROR
    assert error.status.reason == Reason.REASON_TASK_INVALID
    assert "duplicate ID" in error.status.message
    # A later launch reusing an active id is refused too.
    offer_id = cluster.add_offer(fid, agent)
    events = cluster.launch(fid, [offer_id], [task_info("t1", agent)])
    assert one(events, TaskStatusUpdated).state == m.TASK_ERROR


def test_over_allocation_gets_task_error_and_earlier_tasks_keep_their_share() -> None:
    cluster, agent, fid = setup()
    offer_id = cluster.add_offer(fid, agent, resources="cpus:2;mem:256")
    tasks = [task_info("t1", agent, "cpus:1.5"), task_info("t2", agent, "cpus:1")]
    events = cluster.launch(fid, [offer_id], tasks)
    assert one(events, TaskAdded).task.task_id == "t1"
    error = one(events, TaskStatusUpdated)
    assert (error.task_id, error.state) == ("t2", m.TASK_ERROR)
    assert "more resources" in error.status.message
    assert cluster.state.agents[agent].allocated == parse("cpus:1.5")


@pytest.mark.parametrize(
    ("mutate", "fragment"),
    [
        (lambda t: t.ClearField("command"), "at least one"),
        (lambda t: setattr(t.agent_id, "value", "elsewhere"), "uses agent id"),
        (lambda t: t.ClearField("resources"), "no resources"),
        (lambda t: setattr(t.task_id, "value", "a/b"), "Task ID"),
        (lambda t: setattr(t.kill_policy.grace_period, "nanoseconds", -1), "grace_period"),
        (lambda t: setattr(t.health_check, "type", 0), "Task uses invalid health check: "),
        (lambda t: setattr(t.check, "interval_seconds", 1), "Task uses invalid check: "),
        (lambda t: t.command.environment.variables.add(name="X"), "Task's `CommandInfo` is"),
    ],
)
def test_invalid_task_descriptions(mutate: object, fragment: str) -> None:
    cluster, agent, fid = setup()
    offer_id = cluster.add_offer(fid, agent)
    task = task_info("t1", agent)
    mutate(task)  # type: ignore[operator]
    error = one(cluster.launch(fid, [offer_id], [task]), TaskStatusUpdated)
    assert error.state == m.TASK_ERROR and error.status.reason == Reason.REASON_TASK_INVALID
    assert fragment in error.status.message


def test_launch_with_an_operation_id_is_invalid() -> None:
    cluster, agent, fid = setup()
    offer_id = cluster.add_offer(fid, agent)
    operation = Operation(type=Operation.LAUNCH)
    operation.id.value = "op"
    operation.launch.task_infos.append(task_info("t1", agent))
    error = one(cluster.accept(fid, [offer_id], [operation]), TaskStatusUpdated)
    assert error.state == m.TASK_ERROR and "operation id" in error.status.message


def test_launch_group_is_atomic() -> None:
    cluster, agent, fid = setup(resources=GROUP_AGENT)
    offer_id = cluster.add_offer(fid, agent)
    executor = executor_info("ex", default=True)
    tasks = [task_info("g1", agent, "cpus:1"), task_info("g2", agent, "cpus:1")]
    events = cluster.launch_group(fid, [offer_id], executor, tasks)
    launch = one(events, LaunchRequested)
    assert launch.group and [t.task_id.value for t in launch.tasks] == ["g1", "g2"]
    assert launch.executor is not None and launch.executor.framework_id.value == fid
    assert [e.task.executor_id for e in of_type(events, TaskAdded)] == ["ex", "ex"]
    assert cluster.state.agents[agent].allocated == parse("cpus:2.1;mem:32;disk:32")
    assert list(cluster.state.agents[agent].executors) == [(fid, "ex")]


def test_launch_group_with_one_bad_task_refuses_all() -> None:
    cluster, agent, fid = setup(resources=GROUP_AGENT)
    offer_id = cluster.add_offer(fid, agent)
    good = task_info("g1", agent, "cpus:1")
    bad = task_info("g2", agent, "cpus:1")
    bad.agent_id.value = "elsewhere"
    events = cluster.launch_group(fid, [offer_id], executor_info("ex", default=True), [good, bad])
    errors = of_type(events, TaskStatusUpdated)
    assert [(e.task_id, e.state) for e in errors] == [("g1", m.TASK_ERROR), ("g2", m.TASK_ERROR)]
    assert {e.status.reason for e in errors} == {Reason.REASON_TASK_GROUP_INVALID}
    assert not of_type(events, TaskAdded)
    assert not cluster.state.agents[agent].allocated


def test_empty_task_group_is_invalid_and_group_tasks_may_not_bring_executors() -> None:
    cluster, agent, fid = setup(resources=GROUP_AGENT)
    offer_id = cluster.add_offer(fid, agent)
    executor = executor_info("ex", default=True)
    assert not of_type(cluster.launch_group(fid, [offer_id], executor, []), TaskAdded)
    offer_id = cluster.add_offer(fid, agent)
    task = task_info("g1", agent, executor=executor_info("own"))
    error = one(cluster.launch_group(fid, [offer_id], executor, [task]), TaskStatusUpdated)
    assert error.status.reason == Reason.REASON_TASK_GROUP_INVALID
    assert error.status.message == "The `ExecutorInfo` of task 'g1' is different from executor 'ex'"


def group_refusal(executor: m.ExecutorInfo, task: m.TaskInfo | None = None) -> str:
    """The message a LAUNCH_GROUP of `task` (or a plain one) on `executor` is refused with."""
    cluster, agent, fid = setup(resources=GROUP_AGENT)
    offer_id = cluster.add_offer(fid, agent)
    operation = Operation(type=Operation.LAUNCH_GROUP)
    operation.launch_group.executor.CopyFrom(executor)
    operation.launch_group.task_group.tasks.append(task or task_info("g1", agent, "cpus:1"))
    error = one(cluster.accept(fid, [offer_id], [operation]), TaskStatusUpdated)
    assert error.status.reason == Reason.REASON_TASK_GROUP_INVALID
    return error.status.message


def test_a_group_executor_is_checked_as_mesos_checks_it() -> None:
    """Mesos's task::group::internal::validateExecutor, with its words."""
    _, _, fid = setup(resources=GROUP_AGENT)  # every fresh cluster names its first framework alike
    valid = executor_info("ex", default=True)
    valid.framework_id.value = fid
    assert group_refusal(executor_info("ex", default=True)) == (
        "'ExecutorInfo.framework_id' must be set"
    )
    untyped = m.ExecutorInfo()
    untyped.CopyFrom(valid)
    untyped.ClearField("type")
    untyped.command.value = "executor"
    assert group_refusal(untyped) == "'ExecutorInfo.type' must be set"
    for resources, message in (
        ("mem:32;disk:32", "uses less CPUs (None) than the minimum required (0.01)"),
        ("cpus:0.001;mem:32;disk:32", "uses less CPUs (0.001) than the minimum required (0.01)"),
        ("cpus:0.1;mem:8;disk:32", "uses less memory (8MB) than the minimum required (32MB)"),
        ("cpus:0.1;disk:32", "uses less memory (None) than the minimum required (32MB)"),
        ("cpus:0.1;mem:32", "uses no disk"),
    ):
        poor = m.ExecutorInfo()
        poor.CopyFrom(valid)
        del poor.resources[:]
        poor.resources.extend(resource_protos(resources))
        assert group_refusal(poor) == f"Executor 'ex' {message}"
    # A task may carry the group's own executor (Mesos copies it into each task).
    cluster, agent, _ = setup(resources=GROUP_AGENT)
    offer_id = cluster.add_offer(fid, agent)
    task = task_info("g1", agent, "cpus:1")
    task.executor.CopyFrom(valid)
    events = cluster.launch_group(fid, [offer_id], valid, [task])
    assert [e.task.task_id for e in of_type(events, TaskAdded)] == ["g1"]
    # A task's own errors name the task.
    bad = task_info("g/1", agent, "cpus:1")
    assert group_refusal(valid, bad).startswith("Task 'g/1' is invalid: ")


def test_a_launch_executor_must_be_custom() -> None:
    cluster, agent, fid = setup()
    offer_id = cluster.add_offer(fid, agent)
    task = task_info("t1", agent, "cpus:1", executor=executor_info("ex", default=True))
    error = one(cluster.launch(fid, [offer_id], [task]), TaskStatusUpdated)
    assert error.status.message == "'ExecutorInfo.type' must be 'CUSTOM'"


def test_custom_executor_task_holds_executor_resources_once() -> None:
    cluster, agent, fid = setup()
    offer_id = cluster.add_offer(fid, agent)
    executor = executor_info("ex", "cpus:0.5;mem:64")
    tasks = [task_info("t1", agent, "cpus:1", executor=executor)]
    tasks.append(task_info("t2", agent, "cpus:1", executor=executor))
    events = cluster.launch(fid, [offer_id], tasks)
    assert len(of_type(events, LaunchRequested)) == 2
    assert cluster.state.agents[agent].allocated == parse("cpus:2.5;mem:64")


def test_resource_operations_asking_for_feedback_get_operation_error() -> None:
    cluster, agent, fid = setup()
    offer_id = cluster.add_offer(fid, agent)
    with_id = Operation(type=Operation.CREATE)
    with_id.id.value = "op-7"
    without_id = Operation(type=Operation.UNRESERVE)
    events = cluster.accept(fid, [offer_id], [with_id, without_id])
    status = one(events, OperationStatusUpdated).status
    assert status.state == m.OPERATION_ERROR and status.operation_id.value == "op-7"
    assert "does not have the required RESOURCE_PROVIDER capability" in status.message
    assert not cluster.state.offers  # the offer was still used up


def test_unsupported_operations_with_an_id_get_operation_error() -> None:
    cluster, agent, fid = setup()
    offer_id = cluster.add_offer(fid, agent)
    with_id = Operation(type=Operation.CREATE_DISK)
    with_id.id.value = "op-8"
    events = cluster.accept(fid, [offer_id], [with_id])
    status = one(events, OperationStatusUpdated).status
    assert status.operation_id.value == "op-8"
    assert "CREATE_DISK is not supported" in status.message


def test_decline_installs_a_filter_and_frees_the_resources() -> None:
    cluster, agent, fid = setup()
    offer_id = cluster.add_offer(fid, agent)
    events = cluster.decline(fid, [offer_id])
    removed = one(events, OfferRemoved)
    assert (removed.reason, removed.rescind) == ("declined", False)
    assert not cluster.state.agents[agent].allocated
    refusal = cluster.state.frameworks[fid].filters[(agent, "*")]
    assert refusal.expires_ns == cluster.now_ns + 5 * NS_PER_S
    # Declining someone else's offer, or an unknown one, does nothing.
    other = cluster.add_framework("other")
    theirs = cluster.add_offer(other, agent)
    assert cluster.decline(fid, [theirs, "nope"]) == []


def test_rescind_tells_the_scheduler() -> None:
    cluster, agent, fid = setup()
    offer_id = cluster.add_offer(fid, agent)
    removed = one(cluster.rescind([offer_id, "nope"]), OfferRemoved)
    assert (removed.offer_id, removed.reason, removed.rescind) == (offer_id, "rescinded", True)
    assert not cluster.state.agents[agent].allocated


def test_offers_expire_on_tick_with_an_offer_timeout() -> None:
    cluster = Cluster(offer_timeout_ns=10 * NS_PER_S)
    agent = cluster.add_agent()
    fid = cluster.add_framework()
    offer_id = cluster.add_offer(fid, agent)
    assert cluster.tick(5 * NS_PER_S) == []
    removed = one(cluster.tick(5 * NS_PER_S), OfferRemoved)
    assert (removed.offer_id, removed.reason, removed.rescind) == (offer_id, "expired", True)


def test_accept_pools_offers_of_one_agent() -> None:
    cluster, agent, fid = setup()
    o1 = cluster.add_offer(fid, agent, resources="cpus:1;mem:64")
    o2 = cluster.add_offer(fid, agent, resources="cpus:1;mem:64")
    events = cluster.launch(fid, [o1, o2], [task_info("t1", agent, "cpus:2;mem:128")])
    assert one(events, TaskAdded).task.task_id == "t1"
    assert not cluster.state.frameworks[fid].filters  # nothing left over to filter


def test_a_group_cannot_claim_the_same_port_twice() -> None:
    cluster, agent, fid = setup(resources=GROUP_AGENT)
    offer_id = cluster.add_offer(fid, agent)
    tasks = [task_info("g1", agent, "cpus:1;ports:[31000-31001]")]
    tasks.append(task_info("g2", agent, "cpus:1;ports:[31001-31001]"))
    events = cluster.launch_group(fid, [offer_id], executor_info("ex", default=True), tasks)
    errors = of_type(events, TaskStatusUpdated)
    assert [e.state for e in errors] == [m.TASK_ERROR, m.TASK_ERROR]
    assert "same ranges" in errors[0].status.message
    # Separate ports are fine.
    offer_id = cluster.add_offer(fid, agent)
    tasks[1] = task_info("g2", agent, "cpus:1;ports:[31002-31002]")
    assert (
        len(
            of_type(
                cluster.launch_group(fid, [offer_id], executor_info("ex", default=True), tasks),
                TaskAdded,
            )
        )
        == 2
    )


def test_launch_tasks_draw_ports_from_the_pool_one_after_another() -> None:
    cluster, agent, fid = setup()
    offer_id = cluster.add_offer(fid, agent)
    tasks = [task_info("t1", agent, "cpus:1;ports:[31000-31000]")]
    tasks.append(task_info("t2", agent, "cpus:1;ports:[31000-31000]"))
    events = cluster.launch(fid, [offer_id], tasks)
    assert one(events, TaskAdded).task.task_id == "t1"
    assert one(events, TaskStatusUpdated).state == m.TASK_ERROR


def test_a_schema_3_group_launches_without_mesos_group_checks() -> None:
    """Entries written before schema 4 replay to what they gave: a group executor with no
    framework_id and no disk launched."""
    cluster, agent, fid = setup()
    offer_id = cluster.add_offer(fid, agent)
    operation = Operation(type=Operation.LAUNCH_GROUP)
    operation.launch_group.executor.CopyFrom(executor_info("ex", "cpus:0.1;mem:32", default=True))
    operation.launch_group.task_group.tasks.append(task_info("g1", agent, "cpus:1"))
    accept = c.AcceptOffers(framework_id=fid)
    accept.accept.offer_ids.add(value=offer_id)
    accept.accept.operations.append(operation)
    events = cluster.batch([c.Command(accept_offers=accept)], schema_version=3)
    assert [e.task.task_id for e in of_type(events, TaskAdded)] == ["g1"]
