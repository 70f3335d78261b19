"""Domain events: what the fold says happened, in order, for each entry.

They are the fold's only output. The leader shell turns them into scheduler
and agent stream messages; projections fold them into read models; the API
finds the outcome of its own proposal among them. They are derived, never
persisted: a replay produces them again.

Treat them as immutable. They are slotted but not frozen: a frozen
dataclass sets each field through `object.__setattr__`, which made building
an event about four times dearer, and the fold builds one or two per command.
"""

from __future__ import annotations

from dataclasses import dataclass

from meseta.master.resources import Resources
from meseta.master.state import InverseOffer, Offer, Task
from meseta.proto.mesos.v1 import mesos_pb2
from meseta.proto.mesos.v1.maintenance import maintenance_pb2
from meseta.proto.mesos.v1.quota import quota_pb2
from meseta.proto.mesos.v1.scheduler import scheduler_pb2


@dataclass(slots=True)
class ClusterInitialized:
    cluster_id: str


@dataclass(slots=True)
class LeaderElected:
    term: int
    master_info: mesos_pb2.MasterInfo


@dataclass(slots=True)
class WeightsUpdated:
    """Every configured role weight after an update, in milli (1000 = 1.0), by role."""

    weights: tuple[tuple[str, int], ...]


@dataclass(slots=True)
class QuotaUpdated:
    """Every role's quota after an update (roles without quota are not listed)."""

    configs: tuple[quota_pb2.QuotaConfig, ...]


@dataclass(slots=True)
class CommandRejected:
    """A command the fold refused; `status` is the HTTP status the API answers with."""

    command: str
    message: str
    status: int = 400
    stream_id: str = ""


# -- frameworks ------------------------------------------------------------------


@dataclass(slots=True)
class FrameworkSubscribed:
    framework_id: str
    stream_id: str
    info: mesos_pb2.FrameworkInfo
    resubscribed: bool
    offer_constraints: scheduler_pb2.OfferConstraints | None = None


@dataclass(slots=True)
class SubscriptionRejected:
    """Sent to the new stream as its only event (an in-stream ERROR, then close)."""

    stream_id: str
    message: str


@dataclass(slots=True)
class FrameworkFailedOver:
    """The previous subscription of a framework was replaced by a new one."""

    framework_id: str
    old_stream_id: str


@dataclass(slots=True)
class FrameworkDisconnected:
    framework_id: str
    stream_id: str


@dataclass(slots=True)
class FrameworkUpdated:
    framework_id: str
    info: mesos_pb2.FrameworkInfo
    offer_constraints: scheduler_pb2.OfferConstraints | None = None


@dataclass(slots=True)
class FrameworkRemoved:
    framework_id: str
    stream_id: str
    info: mesos_pb2.FrameworkInfo


# -- offers ----------------------------------------------------------------------


@dataclass(slots=True)
class OffersCreated:
    framework_id: str
    offers: tuple[Offer, ...]


@dataclass(slots=True)
class OfferRemoved:
    """An offer left the books. `rescind`: the scheduler must be told (RESCIND)."""

    framework_id: str
    offer_id: str
    reason: str  # accepted | declined | rescinded | expired | discarded
    rescind: bool


@dataclass(slots=True)
class InverseOffersCreated:
    framework_id: str
    inverse_offers: tuple[InverseOffer, ...]


@dataclass(slots=True)
class InverseOfferRemoved:
    """An inverse offer left the books: answered, or `rescind`ed (RESCIND_INVERSE_OFFER)."""

    framework_id: str
    inverse_offer_id: str
    rescind: bool


@dataclass(slots=True)
class MaintenanceChanged:
    """The schedule, or a machine's mode or its frameworks' answers, changed: the view
    serves both (GET_MAINTENANCE_SCHEDULE, GET_MAINTENANCE_STATUS)."""

    schedule: maintenance_pb2.Schedule
    status: maintenance_pb2.ClusterStatus


# -- tasks and executors -----------------------------------------------------------


@dataclass(slots=True)
class TaskAdded:
    task: Task


@dataclass(slots=True)
class LaunchRequested:
    """Ask an agent to run tasks (a task group when `group`)."""

    agent_id: str
    framework_id: str
    framework_info: mesos_pb2.FrameworkInfo
    executor: mesos_pb2.ExecutorInfo | None
    tasks: tuple[mesos_pb2.TaskInfo, ...]
    group: bool


@dataclass(slots=True)
class TaskStatusUpdated:
    """A task's state changed or an update is to be delivered to the scheduler.

    `status` is exactly what the scheduler receives (already translated for
    frameworks that are not partition-aware); `forward` is False when the
    update only changes the books (e.g. a duplicate that must be re-acked).
    `refused`: a launch the master refused; the task never joined the books, even
    when a booked task has its id (a duplicate id).
    """

    framework_id: str
    task_id: str
    agent_id: str
    state: int
    status: mesos_pb2.TaskStatus
    forward: bool = True
    refused: bool = False


@dataclass(slots=True)
class TaskCompleted:
    """A terminal task left the active set (acknowledged or its framework removed)."""

    task: Task


@dataclass(slots=True)
class KillRequested:
    agent_id: str
    framework_id: str
    task_id: str
    kill_policy: mesos_pb2.KillPolicy | None


@dataclass(slots=True)
class AcknowledgementForwarded:
    agent_id: str
    framework_id: str
    task_id: str
    uuid: bytes


@dataclass(slots=True)
class ExecutorShutdownRequested:
    agent_id: str
    framework_id: str
    executor_id: str


@dataclass(slots=True)
class FrameworkShutdownRequested:
    agent_id: str
    framework_id: str


@dataclass(slots=True)
class ExecutorExited:
    agent_id: str
    framework_id: str
    executor_id: str
    status: int | None


@dataclass(slots=True)
class OperationStatusUpdated:
    """Feedback for an offer operation that carried an id (UPDATE_OPERATION_STATUS)."""

    framework_id: str
    status: mesos_pb2.OperationStatus


# -- agents ----------------------------------------------------------------------


@dataclass(slots=True)
class AgentRegistered:
    agent_id: str
    stream_id: str
    info: mesos_pb2.AgentInfo
    reregistered: bool
    version: str = ""
    capabilities: tuple[int, ...] = ()  # AgentInfo.Capability.Type values
    ip: str = ""  # where the agent is reached ("" when the entry did not record it)


@dataclass(slots=True)
class AgentRegistrationRejected:
    stream_id: str
    message: str
    # The agent must stop everything (it was removed or marked gone, or came back under
    # another address), as Mesos answers with a ShutdownMessage; otherwise it may retry.
    shutdown: bool = False


@dataclass(slots=True)
class AgentDisconnected:
    agent_id: str
    stream_id: str


@dataclass(slots=True)
class AgentUnreachable:
    agent_id: str


@dataclass(slots=True)
class AgentGone:
    agent_id: str


@dataclass(slots=True)
class AgentRemoved:
    """The agent left for good: replaced by a new agent at its address ("registered"), or
    it unregistered ("unregistered"), as Mesos's agent removal reasons name them."""

    agent_id: str
    cause: str = "registered"


@dataclass(slots=True)
class TasksReconcileRequested:
    """Ask an agent about tasks it did not report; it answers with status updates."""

    agent_id: str
    framework_id: str
    task_ids: tuple[str, ...]


@dataclass(slots=True)
class AgentDrainRequested:
    """Tell the agent to drain (Mesos's DrainSlaveMessage): kill every task."""

    agent_id: str
    config: mesos_pb2.DrainConfig


@dataclass(slots=True)
class AgentDeactivationChanged:
    """The agent was deactivated or reactivated, or its drain moved on (operator
    DEACTIVATE_AGENT, REACTIVATE_AGENT, DRAIN_AGENT; DRAINING -> DRAINED)."""

    agent_id: str
    deactivated: bool
    drain: mesos_pb2.DrainInfo | None
    drain_started_ns: int


@dataclass(slots=True)
class AgentResourcesChanged:
    """Reservations or persistent volumes changed the agent's total (an operation, or
    its re-registration with the ones it had): the agent checkpoints them."""

    agent_id: str
    total: Resources


@dataclass(slots=True)
class AgentLost:
    """Schedulers hear FAILURE{agent_id} (the agent is unreachable or gone)."""

    agent_id: str


DomainEvent = (
    ClusterInitialized
    | LeaderElected
    | WeightsUpdated
    | QuotaUpdated
    | CommandRejected
    | FrameworkSubscribed
    | SubscriptionRejected
    | FrameworkFailedOver
    | FrameworkDisconnected
    | FrameworkUpdated
    | FrameworkRemoved
    | OffersCreated
    | OfferRemoved
    | TaskAdded
    | LaunchRequested
    | TaskStatusUpdated
    | TaskCompleted
    | KillRequested
    | AcknowledgementForwarded
    | ExecutorShutdownRequested
    | FrameworkShutdownRequested
    | ExecutorExited
    | OperationStatusUpdated
    | AgentRegistered
    | AgentRegistrationRejected
    | AgentDisconnected
    | AgentUnreachable
    | AgentGone
    | AgentDrainRequested
    | AgentDeactivationChanged
    | AgentResourcesChanged
    | InverseOffersCreated
    | InverseOfferRemoved
    | MaintenanceChanged
    | AgentRemoved
    | TasksReconcileRequested
    | AgentLost
)
