"""Domain events -> scheduler and agent stream messages (leader only).

Runs as a fold listener, right after each entry is applied, so every message
describes state that is already committed and visible (design A.8 rule 5).
"""

from __future__ import annotations

import functools

from meseta.api.context import MasterContext
from meseta.api.streams import Stream
from meseta.master import decide
from meseta.master import events as ev
from meseta.master.appliers.agents import REMOVAL_CAUSES
from meseta.master.resources import to_protos
from meseta.master.state import Agent, InverseOffer, Offer, State
from meseta.master.v1 import commands_pb2 as commands
from meseta.projections.records import inverse_offer_proto
from meseta.proto.agent_link.v1 import agent_link_pb2
from meseta.proto.mesos.v1 import mesos_pb2
from meseta.proto.mesos.v1.scheduler import scheduler_pb2

Event = scheduler_pb2.Event
AgentEvent = agent_link_pb2.Event
HEARTBEAT_INTERVAL_S = 15.0
Capability = mesos_pb2.FrameworkInfo.Capability


class EventRouter:
    def __init__(self, context: MasterContext) -> None:
        self.context = context

    def __call__(self, index: int, events: list[ev.DomainEvent]) -> None:
        if not self.context.leadership.term:
            return
        # A (re-)registration's own requests to the agent (RECONCILE_TASKS, resent
        # KILL_TASKs, SHUTDOWN_FRAMEWORK) precede AgentRegistered in the entry: bind the
        # new stream (and send SUBSCRIBED) first, or they would find no stream.
        for event in events:
            if isinstance(event, ev.AgentRegistered):
                agent_registered(event, self)
        for event in events:
            if not isinstance(event, ev.AgentRegistered):
                route(event, self)

    def framework(self, framework_id: str) -> Stream | None:
        return self.context.frameworks.get(framework_id)

    def agent(self, agent_id: str) -> Stream | None:
        return self.context.agents.get(agent_id)

    @property
    def state(self) -> State:
        return self.context.state


@functools.singledispatch
def route(event: object, router: EventRouter) -> None:
    """Events with no subscriber-visible effect."""


@route.register
def _(event: ev.FrameworkSubscribed, router: EventRouter) -> None:
    stream = router.context.pending.pop(event.stream_id, None)
    if stream is None:
        # The subscriber gave up before its entry applied (e.g. it was told 503): the
        # framework must not stay "connected" to a stream nobody reads.
        if router.context.leadership.leading:
            body = commands.DisconnectFramework(
                framework_id=event.framework_id, stream_id=event.stream_id
            )
            router.context.leadership.spawn_proposal(decide.command(disconnect_framework=body))
        return
    stream.bind(router.context.frameworks, event.framework_id)
    traffic = router.context.traffic_of(event.framework_id)
    traffic.call(scheduler_pb2.Call.SUBSCRIBE)  # counted once the framework has its id
    stream.tally = traffic.events
    subscribed = Event(type=Event.SUBSCRIBED)
    subscribed.subscribed.framework_id.value = event.framework_id
    subscribed.subscribed.heartbeat_interval_seconds = HEARTBEAT_INTERVAL_S
    if router.state.master_info is not None:
        subscribed.subscribed.master_info.CopyFrom(router.state.master_info)
    stream.send(subscribed)
    stream.send_heartbeat()


@route.register
def _(event: ev.SubscriptionRejected, router: EventRouter) -> None:
    stream = router.context.pending.pop(event.stream_id, None)
    if stream is not None:
        stream.send(error_event(event.message))
        stream.close()


@route.register
def _(event: ev.FrameworkFailedOver, router: EventRouter) -> None:
    stream = router.framework(event.framework_id)
    if stream is not None and stream.stream_id == event.old_stream_id:
        del router.context.frameworks[event.framework_id]
        stream.send(error_event("Framework failed over"))
        stream.close()


@route.register
def _(event: ev.FrameworkRemoved, router: EventRouter) -> None:
    router.context.traffic.pop(event.framework_id, None)
    stream = router.context.frameworks.pop(event.framework_id, None)
    if stream is not None:
        stream.close()


@route.register
def _(event: ev.OffersCreated, router: EventRouter) -> None:
    stream = router.framework(event.framework_id)
    if stream is None:
        return
    message = Event(type=Event.OFFERS)
    message.offers.offers.extend(offer_message(router.state, offer) for offer in event.offers)
    stream.send(message)


@route.register
def _(event: ev.OfferRemoved, router: EventRouter) -> None:
    stream = router.framework(event.framework_id)
    if stream is not None and event.rescind:
        message = Event(type=Event.RESCIND)
        message.rescind.offer_id.value = event.offer_id
        stream.send(message)


@route.register
def _(event: ev.InverseOffersCreated, router: EventRouter) -> None:
    stream = router.framework(event.framework_id)
    if stream is None:
        return
    message = Event(type=Event.INVERSE_OFFERS)
    message.inverse_offers.inverse_offers.extend(
        inverse_offer_message(router.state, inverse) for inverse in event.inverse_offers
    )
    stream.send(message)


@route.register
def _(event: ev.InverseOfferRemoved, router: EventRouter) -> None:
    stream = router.framework(event.framework_id)
    if stream is not None and event.rescind:
        message = Event(type=Event.RESCIND_INVERSE_OFFER)
        message.rescind_inverse_offer.inverse_offer_id.value = event.inverse_offer_id
        stream.send(message)


@route.register
def _(event: ev.TaskStatusUpdated, router: EventRouter) -> None:
    stream = router.framework(event.framework_id)
    if stream is not None and event.forward:
        message = Event(type=Event.UPDATE)
        message.update.status.CopyFrom(event.status)
        stream.send(message)


@route.register
def _(event: ev.ExecutorExited, router: EventRouter) -> None:
    stream = router.framework(event.framework_id)
    if stream is not None:
        message = Event(type=Event.FAILURE)
        message.failure.agent_id.value = event.agent_id
        message.failure.executor_id.value = event.executor_id
        if event.status is not None:
            message.failure.status = event.status
        stream.send(message)


@route.register
def _(event: ev.AgentLost, router: EventRouter) -> None:
    message = Event(type=Event.FAILURE)
    message.failure.agent_id.value = event.agent_id
    for stream in list(router.context.frameworks.values()):
        stream.send(message)


@route.register
def _(event: ev.OperationStatusUpdated, router: EventRouter) -> None:
    stream = router.framework(event.framework_id)
    if stream is not None:
        message = Event(type=Event.UPDATE_OPERATION_STATUS)
        message.update_operation_status.status.CopyFrom(event.status)
        stream.send(message)


def error_event(text: str) -> Event:
    message = Event(type=Event.ERROR)
    message.error.message = text
    return message


def agent_url(agent: Agent) -> mesos_pb2.URL:
    url = mesos_pb2.URL(scheme="http", path="/slave(1)")
    url.address.hostname = agent.hostname
    if agent.ip:
        url.address.ip = agent.ip
    url.address.port = agent.info.port
    return url


def offer_message(state: State, offer: Offer) -> mesos_pb2.Offer:
    framework = state.frameworks[offer.framework_id]
    agent = state.agents[offer.agent_id]
    multi_role = Capability.MULTI_ROLE in framework.capabilities
    refined = Capability.RESERVATION_REFINEMENT in framework.capabilities
    message = mesos_pb2.Offer(hostname=agent.hostname)
    message.id.value = offer.id
    message.framework_id.value = offer.framework_id
    message.agent_id.value = offer.agent_id
    message.url.CopyFrom(agent_url(agent))
    message.resources.extend(
        to_protos(
            offer.resources, allocation_role=offer.role if multi_role else None, refined=refined
        )
    )
    message.attributes.extend(agent.info.attributes)
    if agent.info.HasField("domain"):
        message.domain.CopyFrom(agent.info.domain)
    for framework_id, executor_id in agent.executors:
        if framework_id == offer.framework_id:
            message.executor_ids.add(value=executor_id)
    if multi_role:
        message.allocation_info.role = offer.role
    if offer.unavailability is not None:
        message.unavailability.CopyFrom(offer.unavailability)
    return message


def inverse_offer_message(state: State, inverse: InverseOffer) -> mesos_pb2.InverseOffer:
    """As the view keeps it, with the agent's URL."""
    message = inverse_offer_proto(inverse)
    message.url.CopyFrom(agent_url(state.agents[inverse.agent_id]))
    return message


# -- the agent side --------------------------------------------------------------


def agent_error(text: str) -> AgentEvent:
    message = AgentEvent(type=AgentEvent.ERROR)
    message.error.message = text
    return message


def agent_registered(event: ev.AgentRegistered, router: EventRouter) -> None:
    stream = router.context.pending.pop(event.stream_id, None)
    if stream is None:
        return
    old = router.context.agents.get(event.agent_id)
    if old is not None and old is not stream:
        old.close()
    stream.bind(router.context.agents, event.agent_id)
    message = AgentEvent(type=AgentEvent.SUBSCRIBED)
    message.subscribed.agent_id.value = event.agent_id
    message.subscribed.heartbeat_interval_seconds = HEARTBEAT_INTERVAL_S
    if router.state.master_info is not None:
        message.subscribed.master_info.CopyFrom(router.state.master_info)
    stream.send(message)
    router.context.leadership.note_contact(event.agent_id)


@route.register
def _(event: ev.AgentRegistrationRejected, router: EventRouter) -> None:
    stream = router.context.pending.pop(event.stream_id, None)
    if stream is not None:
        if event.shutdown:
            # As Mesos's ShutdownMessage: the agent kills its executors and stops.
            message = AgentEvent(type=AgentEvent.SHUTDOWN)
            message.error.message = event.message
            stream.send(message)
        else:
            stream.send(agent_error(event.message))
        stream.close()


@route.register
def _(event: ev.LaunchRequested, router: EventRouter) -> None:
    stream = router.agent(event.agent_id)
    if stream is None:
        return  # the agent reports what it runs when it re-registers
    if event.group:
        message = AgentEvent(type=AgentEvent.RUN_TASK_GROUP)
        message.run_task_group.framework_info.CopyFrom(event.framework_info)
        assert event.executor is not None
        message.run_task_group.executor_info.CopyFrom(event.executor)
        message.run_task_group.task_group.tasks.extend(event.tasks)
        stream.send(message)
        return
    for task in event.tasks:
        message = AgentEvent(type=AgentEvent.RUN_TASK)
        message.run_task.framework_info.CopyFrom(event.framework_info)
        if event.executor is not None:
            message.run_task.executor_info.CopyFrom(event.executor)
        message.run_task.task.CopyFrom(task)
        stream.send(message)


@route.register
def _(event: ev.KillRequested, router: EventRouter) -> None:
    stream = router.agent(event.agent_id)
    if stream is not None:
        message = AgentEvent(type=AgentEvent.KILL_TASK)
        message.kill_task.framework_id.value = event.framework_id
        message.kill_task.task_id.value = event.task_id
        if event.kill_policy is not None:
            message.kill_task.kill_policy.CopyFrom(event.kill_policy)
        stream.send(message)


@route.register
def _(event: ev.AgentDrainRequested, router: EventRouter) -> None:
    stream = router.agent(event.agent_id)
    if stream is not None:
        message = AgentEvent(type=AgentEvent.DRAIN)
        message.drain.config.CopyFrom(event.config)
        stream.send(message)


@route.register
def _(event: ev.AgentResourcesChanged, router: EventRouter) -> None:
    stream = router.agent(event.agent_id)
    if stream is not None:
        message = AgentEvent(type=AgentEvent.CHECKPOINT_RESOURCES)
        message.checkpoint_resources.resources.extend(to_protos(event.total))
        stream.send(message)


@route.register
def _(event: ev.AcknowledgementForwarded, router: EventRouter) -> None:
    stream = router.agent(event.agent_id)
    if stream is not None:
        message = AgentEvent(type=AgentEvent.ACKNOWLEDGE)
        message.acknowledge.framework_id.value = event.framework_id
        message.acknowledge.task_id.value = event.task_id
        message.acknowledge.uuid = event.uuid
        stream.send(message)


@route.register
def _(event: ev.ExecutorShutdownRequested, router: EventRouter) -> None:
    stream = router.agent(event.agent_id)
    if stream is not None:
        message = AgentEvent(type=AgentEvent.SHUTDOWN_EXECUTOR)
        message.shutdown_executor.framework_id.value = event.framework_id
        message.shutdown_executor.executor_id.value = event.executor_id
        stream.send(message)


@route.register
def _(event: ev.FrameworkShutdownRequested, router: EventRouter) -> None:
    stream = router.agent(event.agent_id)
    if stream is not None:
        message = AgentEvent(type=AgentEvent.SHUTDOWN_FRAMEWORK)
        message.shutdown_framework.framework_id.value = event.framework_id
        stream.send(message)


@route.register
def _(event: ev.TasksReconcileRequested, router: EventRouter) -> None:
    stream = router.agent(event.agent_id)
    if stream is not None:
        message = AgentEvent(type=AgentEvent.RECONCILE_TASKS)
        message.reconcile_tasks.framework_id.value = event.framework_id
        for task_id in event.task_ids:
            message.reconcile_tasks.task_ids.add(value=task_id)
        stream.send(message)


def shut_agent_down(event: ev.AgentGone | ev.AgentRemoved, router: EventRouter) -> None:
    stream = router.context.agents.pop(event.agent_id, None)
    if stream is not None:
        message = AgentEvent(type=AgentEvent.SHUTDOWN)
        if isinstance(event, ev.AgentRemoved):  # says why, as Mesos's ShutdownMessage
            message.error.message = REMOVAL_CAUSES[event.cause]
        stream.send(message)
        stream.close()


route.register(ev.AgentGone, shut_agent_down)
route.register(ev.AgentRemoved, shut_agent_down)


@route.register
def _(event: ev.AgentUnreachable, router: EventRouter) -> None:
    stream = router.context.agents.pop(event.agent_id, None)
    if stream is not None:
        stream.close()  # it must re-register to come back
