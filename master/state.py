"""The master's state: what the fold builds from the log.

Plain slotted dataclasses owned by the fold; protobuf values stored inside are
never mutated after storing. Collections are dicts (insertion-ordered, so
every replica iterates them identically); sets are never iterated.
Resources are exact integers (`master.resources`). Times are nanoseconds
from entry timestamps.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from meseta.master.resources import EMPTY, Resources
from meseta.master.v1 import commands_pb2
from meseta.proto.mesos.v1 import mesos_pb2
from meseta.proto.mesos.v1.allocator import allocator_pb2
from meseta.proto.mesos.v1.maintenance import maintenance_pb2
from meseta.proto.mesos.v1.scheduler import scheduler_pb2

TaskState = int  # mesos_pb2.TaskState value

TERMINAL_STATES = frozenset(
    {
        mesos_pb2.TASK_FINISHED,
        mesos_pb2.TASK_FAILED,
        mesos_pb2.TASK_KILLED,
        mesos_pb2.TASK_ERROR,
        mesos_pb2.TASK_LOST,
        mesos_pb2.TASK_DROPPED,
        mesos_pb2.TASK_GONE,
        mesos_pb2.TASK_GONE_BY_OPERATOR,
    }
)


def is_terminal(state: TaskState) -> bool:
    return state in TERMINAL_STATES


class FrameworkStatus(enum.Enum):
    CONNECTED = "connected"  # a live subscription stream
    DISCONNECTED = "disconnected"  # within failover_timeout
    REMOVED = "removed"  # torn down; its id can never subscribe again


class AgentStatus(enum.Enum):
    ACTIVE = "active"  # registered, stream connected
    DISCONNECTED = "disconnected"  # stream lost; awaiting re-registration
    RECOVERING = "recovering"  # a new leader awaits its re-registration
    UNREACHABLE = "unreachable"
    GONE = "gone"  # marked gone by an operator; may never come back
    REMOVED = "removed"  # shut down or replaced


REACHABLE_AGENT = (AgentStatus.ACTIVE, AgentStatus.DISCONNECTED, AgentStatus.RECOVERING)
# Registered with this leader, connected or not (Mesos's `slaves.registered`).
REGISTERED_AGENT = (AgentStatus.ACTIVE, AgentStatus.DISCONNECTED)


@dataclass(slots=True)
class Quota:
    """A top-level role's quota (Mesos 1.9+): scalar guarantees and limits, name -> milli.
    A name without a limit is unlimited; one without a guarantee is guaranteed nothing."""

    guarantees: dict[str, int] = field(default_factory=dict)
    limits: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class Filter:
    """A refusal: hide `resources` (or less) on an agent from a role of a framework."""

    resources: Resources
    expires_ns: int


@dataclass(slots=True)
class Framework:
    id: str
    info: mesos_pb2.FrameworkInfo
    roles: tuple[str, ...]
    status: FrameworkStatus
    stream_id: str
    registered_ns: int
    reregistered_ns: int = 0
    disconnected_ns: int = 0
    removed_ns: int = 0
    failover_timeout_ns: int = 0
    # Roles whose offers are suppressed; a dict used as an ordered set.
    suppressed_roles: dict[str, None] = field(default_factory=dict)
    offer_constraints: scheduler_pb2.OfferConstraints | None = None
    # (agent id, role) -> active refusal.
    filters: dict[tuple[str, str], Filter] = field(default_factory=dict)
    offers: dict[str, None] = field(default_factory=dict)
    inverse_offers: dict[str, None] = field(default_factory=dict)
    # Agent id -> when its refusal of inverse offers from that agent ends.
    inverse_filters: dict[str, int] = field(default_factory=dict)
    tasks: dict[str, Task] = field(default_factory=dict)  # active, incl. unacked terminal
    unreachable_tasks: dict[str, Task] = field(default_factory=dict)
    # Scalar resources held per role (offered + used by tasks and executors), for DRF.
    allocated: dict[str, Resources] = field(default_factory=dict)
    capabilities: frozenset[int] = frozenset()

    def has_capability(self, capability: int) -> bool:
        return capability in self.capabilities

    @property
    def partition_aware(self) -> bool:
        return mesos_pb2.FrameworkInfo.Capability.PARTITION_AWARE in self.capabilities

    @property
    def active(self) -> bool:
        return self.status is FrameworkStatus.CONNECTED


@dataclass(slots=True)
class Executor:
    framework_id: str
    info: mesos_pb2.ExecutorInfo
    resources: Resources
    role: str
    task_ids: dict[str, None] = field(default_factory=dict)


@dataclass(slots=True)
class Task:
    task_id: str
    framework_id: str
    agent_id: str
    executor_id: str  # "" for command tasks until the agent reports one
    info: mesos_pb2.TaskInfo
    role: str
    resources: Resources
    state: TaskState
    created_ns: int
    # The update being delivered to the scheduler (awaiting its ACK).
    status_update_state: TaskState | None = None
    status_update_uuid: bytes | None = None
    # History: consecutive identical states collapsed, `data` stripped.
    statuses: list[mesos_pb2.TaskStatus] = field(default_factory=list)
    # Resources stay allocated until terminal or unreachable.
    holds_resources: bool = True
    # A KILL was asked for and the task has not ended: (re)sent whenever its agent
    # (re-)registers, as a KILL on a stream that broke (a leader change, a lost
    # connection) would otherwise be lost while the task runs on.
    kill_pending: bool = False
    kill_policy: mesos_pb2.KillPolicy | None = None

    @property
    def latest_status(self) -> mesos_pb2.TaskStatus | None:
        return self.statuses[-1] if self.statuses else None


@dataclass(slots=True)
class Agent:
    id: str
    info: mesos_pb2.AgentInfo
    status: AgentStatus
    total: Resources
    registered_ns: int
    stream_id: str = ""
    version: str = ""
    capabilities: tuple[int, ...] = ()
    ip: str = ""  # the address of its pid; "" in entries older than that (the hostname serves)
    reregistered_ns: int = 0
    disconnected_ns: int = 0
    unreachable_ns: int = 0
    # Everything handed out on this agent: offers plus tasks plus executors.
    allocated: Resources = EMPTY
    offers: dict[str, None] = field(default_factory=dict)
    inverse_offers: dict[str, None] = field(default_factory=dict)
    # (framework id, task id) -> Task, for active tasks on this agent.
    tasks: dict[tuple[str, str], Task] = field(default_factory=dict)
    # (framework id, executor id) -> Executor.
    executors: dict[tuple[str, str], Executor] = field(default_factory=dict)
    # An operator deactivated or drained it: no offers from it (it keeps its tasks).
    deactivated: bool = False
    # Its drain (DRAINING, then DRAINED) and when the master sent it; kept while the
    # agent is unreachable, dropped when it is gone, removed or reactivated.
    drain: mesos_pb2.DrainInfo | None = None
    drain_started_ns: int = 0

    @property
    def available(self) -> Resources:
        return self.total - self.allocated

    @property
    def hostname(self) -> str:
        return self.info.hostname

    @property
    def machine(self) -> MachineKey:
        """The machine it runs on, as maintenance names machines (Mesos's MachineID)."""
        return machine_key(self.info.hostname, self.ip)


# A machine's (hostname, lowercased, as Mesos compares them; ip).
MachineKey = tuple[str, str]


def machine_key(hostname: str, ip: str) -> MachineKey:
    return (hostname.lower(), ip)


@dataclass(slots=True)
class Machine:
    """A machine in the maintenance schedule: DRAINING until an operator brings it DOWN
    (UP machines are not kept), with its agents and frameworks' answers to the inverse
    offers made for it."""

    id: mesos_pb2.MachineID  # as the schedule names it
    mode: int  # mesos_pb2.MachineInfo.Mode: DRAINING or DOWN
    unavailability: mesos_pb2.Unavailability
    agents: dict[str, None] = field(default_factory=dict)  # every agent seen on it
    # Framework id -> its latest answer to an inverse offer for this machine.
    statuses: dict[str, allocator_pb2.InverseOfferStatus] = field(default_factory=dict)


@dataclass(slots=True)
class Offer:
    id: str
    framework_id: str
    agent_id: str
    role: str
    resources: Resources
    created_ns: int
    # The agent's machine is scheduled for maintenance (Mesos's Offer.unavailability).
    unavailability: mesos_pb2.Unavailability | None = None


@dataclass(slots=True)
class InverseOffer:
    """The master asks a framework for an agent back before its machine's maintenance."""

    id: str
    framework_id: str
    agent_id: str
    unavailability: mesos_pb2.Unavailability
    created_ns: int


@dataclass(slots=True)
class Counters:
    """Sequence numbers behind generated ids (part of state, so replay yields the same ids)."""

    frameworks: int = 0
    agents: int = 0
    offers: int = 0


@dataclass(slots=True)
class State:
    cluster_id: str = ""
    leader_term: int = 0
    master_info: mesos_pb2.MasterInfo | None = None
    config: commands_pb2.MasterConfig = field(default_factory=commands_pb2.MasterConfig)
    # Time of the newest applied entry.
    now_ns: int = 0
    applied_index: int = 0
    # Schema version of the entry being applied: an applier whose meaning changed
    # between versions branches on it (the changes are listed at decide.SCHEMA_VERSION).
    schema_version: int = 0
    counters: Counters = field(default_factory=Counters)
    frameworks: dict[str, Framework] = field(default_factory=dict)
    agents: dict[str, Agent] = field(default_factory=dict)
    # Every agent id ever seen at (hostname, port), oldest first (an agent's address never
    # changes): a new agent replaces the reachable ones at its address without a scan of
    # every agent, which made registering N agents quadratic (125 s for 20k).
    agents_at: dict[tuple[str, int], list[str]] = field(default_factory=dict)
    offers: dict[str, Offer] = field(default_factory=dict)
    # Role weights in milli (1000 = weight 1.0); unlisted roles weigh 1.0.
    weights: dict[str, int] = field(default_factory=dict)
    # Quotas of top-level roles (nested ones cannot have quota, as in Mesos).
    quotas: dict[str, Quota] = field(default_factory=dict)
    # The maintenance schedule, its machines not UP, and the inverse offers out.
    schedule: maintenance_pb2.Schedule = field(default_factory=maintenance_pb2.Schedule)
    machines: dict[MachineKey, Machine] = field(default_factory=dict)
    inverse_offers: dict[str, InverseOffer] = field(default_factory=dict)
    # Agents the allocator should look at -> index at which they were marked.
    # An agent is marked whenever something could make new offers possible on
    # it (resources freed, agent added, filter expired, framework (re)joined).
    dirty_agents: dict[str, int] = field(default_factory=dict)
    # Scalar resources held per role over all frameworks (offered + used), for DRF.
    # Totals over several agents keep scalars only: ranges and sets add as
    # unions, so they cannot be summed across agents (`ledger.scalars`).
    role_allocated: dict[str, Resources] = field(default_factory=dict)
    # The sum of every reachable agent's total scalar resources (DRF denominator).
    cluster_total: Resources = EMPTY
    # Min-heap of (expires_ns, framework id, agent id, role) for offer filters.
    filter_expiries: list[tuple[int, str, str, str]] = field(default_factory=list)
    # Agents in DRAINING: each becomes DRAINED (or gone) once registered with no task left.
    draining_agents: dict[str, None] = field(default_factory=dict)
    # Agents awaiting re-registration (DISCONNECTED or RECOVERING) -> since when.
    awaiting_agents: dict[str, int] = field(default_factory=dict)
    # Frameworks within their failover timeout -> when the timeout fires.
    failover_deadlines: dict[str, int] = field(default_factory=dict)
    # Proposal ids of recently applied entries -> index (bounded window).
    recent_proposals: dict[bytes, int] = field(default_factory=dict)
