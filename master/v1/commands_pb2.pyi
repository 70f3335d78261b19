from meseta.proto.mesos.v1.maintenance import maintenance_pb2 as _maintenance_pb2
from meseta.proto.mesos.v1 import mesos_pb2 as _mesos_pb2
from meseta.proto.mesos.v1.quota import quota_pb2 as _quota_pb2
from meseta.proto.mesos.v1.scheduler import scheduler_pb2 as _scheduler_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CommandBatch(_message.Message):
    __slots__ = ("commands",)
    COMMANDS_FIELD_NUMBER: _ClassVar[int]
    commands: _containers.RepeatedCompositeFieldContainer[Command]
    def __init__(self, commands: _Optional[_Iterable[_Union[Command, _Mapping]]] = ...) -> None: ...

class Command(_message.Message):
    __slots__ = ("init_cluster", "elect_leader", "tick", "update_weights", "update_quota", "subscribe_framework", "disconnect_framework", "teardown_framework", "update_framework", "revive_offers", "suppress_offers", "create_offers", "accept_offers", "decline_offers", "rescind_offers", "kill_task", "update_task_status", "acknowledge_task_status", "shutdown_executor", "exit_executor", "register_agent", "reregister_agent", "disconnect_agent", "mark_agent_unreachable", "mark_agent_gone", "unregister_agent", "deactivate_agent", "reactivate_agent", "drain_agent", "apply_resource_operation", "update_maintenance_schedule", "start_maintenance", "stop_maintenance", "respond_to_inverse_offers")
    INIT_CLUSTER_FIELD_NUMBER: _ClassVar[int]
    ELECT_LEADER_FIELD_NUMBER: _ClassVar[int]
    TICK_FIELD_NUMBER: _ClassVar[int]
    UPDATE_WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    UPDATE_QUOTA_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIBE_FRAMEWORK_FIELD_NUMBER: _ClassVar[int]
    DISCONNECT_FRAMEWORK_FIELD_NUMBER: _ClassVar[int]
    TEARDOWN_FRAMEWORK_FIELD_NUMBER: _ClassVar[int]
    UPDATE_FRAMEWORK_FIELD_NUMBER: _ClassVar[int]
    REVIVE_OFFERS_FIELD_NUMBER: _ClassVar[int]
    SUPPRESS_OFFERS_FIELD_NUMBER: _ClassVar[int]
    CREATE_OFFERS_FIELD_NUMBER: _ClassVar[int]
    ACCEPT_OFFERS_FIELD_NUMBER: _ClassVar[int]
    DECLINE_OFFERS_FIELD_NUMBER: _ClassVar[int]
    RESCIND_OFFERS_FIELD_NUMBER: _ClassVar[int]
    KILL_TASK_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TASK_STATUS_FIELD_NUMBER: _ClassVar[int]
    ACKNOWLEDGE_TASK_STATUS_FIELD_NUMBER: _ClassVar[int]
    SHUTDOWN_EXECUTOR_FIELD_NUMBER: _ClassVar[int]
    EXIT_EXECUTOR_FIELD_NUMBER: _ClassVar[int]
    REGISTER_AGENT_FIELD_NUMBER: _ClassVar[int]
    REREGISTER_AGENT_FIELD_NUMBER: _ClassVar[int]
    DISCONNECT_AGENT_FIELD_NUMBER: _ClassVar[int]
    MARK_AGENT_UNREACHABLE_FIELD_NUMBER: _ClassVar[int]
    MARK_AGENT_GONE_FIELD_NUMBER: _ClassVar[int]
    UNREGISTER_AGENT_FIELD_NUMBER: _ClassVar[int]
    DEACTIVATE_AGENT_FIELD_NUMBER: _ClassVar[int]
    REACTIVATE_AGENT_FIELD_NUMBER: _ClassVar[int]
    DRAIN_AGENT_FIELD_NUMBER: _ClassVar[int]
    APPLY_RESOURCE_OPERATION_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MAINTENANCE_SCHEDULE_FIELD_NUMBER: _ClassVar[int]
    START_MAINTENANCE_FIELD_NUMBER: _ClassVar[int]
    STOP_MAINTENANCE_FIELD_NUMBER: _ClassVar[int]
    RESPOND_TO_INVERSE_OFFERS_FIELD_NUMBER: _ClassVar[int]
    init_cluster: InitCluster
    elect_leader: ElectLeader
    tick: Tick
    update_weights: UpdateWeights
    update_quota: UpdateQuota
    subscribe_framework: SubscribeFramework
    disconnect_framework: DisconnectFramework
    teardown_framework: TeardownFramework
    update_framework: UpdateFramework
    revive_offers: ReviveOffers
    suppress_offers: SuppressOffers
    create_offers: CreateOffers
    accept_offers: AcceptOffers
    decline_offers: DeclineOffers
    rescind_offers: RescindOffers
    kill_task: KillTask
    update_task_status: UpdateTaskStatus
    acknowledge_task_status: AcknowledgeTaskStatus
    shutdown_executor: ShutdownExecutor
    exit_executor: ExitExecutor
    register_agent: RegisterAgent
    reregister_agent: ReregisterAgent
    disconnect_agent: DisconnectAgent
    mark_agent_unreachable: MarkAgentUnreachable
    mark_agent_gone: MarkAgentGone
    unregister_agent: UnregisterAgent
    deactivate_agent: DeactivateAgent
    reactivate_agent: ReactivateAgent
    drain_agent: DrainAgent
    apply_resource_operation: ApplyResourceOperation
    update_maintenance_schedule: UpdateMaintenanceSchedule
    start_maintenance: StartMaintenance
    stop_maintenance: StopMaintenance
    respond_to_inverse_offers: RespondToInverseOffers
    def __init__(self, init_cluster: _Optional[_Union[InitCluster, _Mapping]] = ..., elect_leader: _Optional[_Union[ElectLeader, _Mapping]] = ..., tick: _Optional[_Union[Tick, _Mapping]] = ..., update_weights: _Optional[_Union[UpdateWeights, _Mapping]] = ..., update_quota: _Optional[_Union[UpdateQuota, _Mapping]] = ..., subscribe_framework: _Optional[_Union[SubscribeFramework, _Mapping]] = ..., disconnect_framework: _Optional[_Union[DisconnectFramework, _Mapping]] = ..., teardown_framework: _Optional[_Union[TeardownFramework, _Mapping]] = ..., update_framework: _Optional[_Union[UpdateFramework, _Mapping]] = ..., revive_offers: _Optional[_Union[ReviveOffers, _Mapping]] = ..., suppress_offers: _Optional[_Union[SuppressOffers, _Mapping]] = ..., create_offers: _Optional[_Union[CreateOffers, _Mapping]] = ..., accept_offers: _Optional[_Union[AcceptOffers, _Mapping]] = ..., decline_offers: _Optional[_Union[DeclineOffers, _Mapping]] = ..., rescind_offers: _Optional[_Union[RescindOffers, _Mapping]] = ..., kill_task: _Optional[_Union[KillTask, _Mapping]] = ..., update_task_status: _Optional[_Union[UpdateTaskStatus, _Mapping]] = ..., acknowledge_task_status: _Optional[_Union[AcknowledgeTaskStatus, _Mapping]] = ..., shutdown_executor: _Optional[_Union[ShutdownExecutor, _Mapping]] = ..., exit_executor: _Optional[_Union[ExitExecutor, _Mapping]] = ..., register_agent: _Optional[_Union[RegisterAgent, _Mapping]] = ..., reregister_agent: _Optional[_Union[ReregisterAgent, _Mapping]] = ..., disconnect_agent: _Optional[_Union[DisconnectAgent, _Mapping]] = ..., mark_agent_unreachable: _Optional[_Union[MarkAgentUnreachable, _Mapping]] = ..., mark_agent_gone: _Optional[_Union[MarkAgentGone, _Mapping]] = ..., unregister_agent: _Optional[_Union[UnregisterAgent, _Mapping]] = ..., deactivate_agent: _Optional[_Union[DeactivateAgent, _Mapping]] = ..., reactivate_agent: _Optional[_Union[ReactivateAgent, _Mapping]] = ..., drain_agent: _Optional[_Union[DrainAgent, _Mapping]] = ..., apply_resource_operation: _Optional[_Union[ApplyResourceOperation, _Mapping]] = ..., update_maintenance_schedule: _Optional[_Union[UpdateMaintenanceSchedule, _Mapping]] = ..., start_maintenance: _Optional[_Union[StartMaintenance, _Mapping]] = ..., stop_maintenance: _Optional[_Union[StopMaintenance, _Mapping]] = ..., respond_to_inverse_offers: _Optional[_Union[RespondToInverseOffers, _Mapping]] = ...) -> None: ...

class InitCluster(_message.Message):
    __slots__ = ("cluster_id",)
    CLUSTER_ID_FIELD_NUMBER: _ClassVar[int]
    cluster_id: str
    def __init__(self, cluster_id: _Optional[str] = ...) -> None: ...

class ElectLeader(_message.Message):
    __slots__ = ("term", "master_info", "config")
    TERM_FIELD_NUMBER: _ClassVar[int]
    MASTER_INFO_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    term: int
    master_info: _mesos_pb2.MasterInfo
    config: MasterConfig
    def __init__(self, term: _Optional[int] = ..., master_info: _Optional[_Union[_mesos_pb2.MasterInfo, _Mapping]] = ..., config: _Optional[_Union[MasterConfig, _Mapping]] = ...) -> None: ...

class UpdateWeights(_message.Message):
    __slots__ = ("weight_infos",)
    WEIGHT_INFOS_FIELD_NUMBER: _ClassVar[int]
    weight_infos: _containers.RepeatedCompositeFieldContainer[_mesos_pb2.WeightInfo]
    def __init__(self, weight_infos: _Optional[_Iterable[_Union[_mesos_pb2.WeightInfo, _Mapping]]] = ...) -> None: ...

class UpdateQuota(_message.Message):
    __slots__ = ("configs", "force")
    CONFIGS_FIELD_NUMBER: _ClassVar[int]
    FORCE_FIELD_NUMBER: _ClassVar[int]
    configs: _containers.RepeatedCompositeFieldContainer[_quota_pb2.QuotaConfig]
    force: bool
    def __init__(self, configs: _Optional[_Iterable[_Union[_quota_pb2.QuotaConfig, _Mapping]]] = ..., force: _Optional[bool] = ...) -> None: ...

class MasterConfig(_message.Message):
    __slots__ = ("offer_timeout_ns", "agent_reregister_timeout_ns", "max_completed_tasks_per_framework")
    OFFER_TIMEOUT_NS_FIELD_NUMBER: _ClassVar[int]
    AGENT_REREGISTER_TIMEOUT_NS_FIELD_NUMBER: _ClassVar[int]
    MAX_COMPLETED_TASKS_PER_FRAMEWORK_FIELD_NUMBER: _ClassVar[int]
    offer_timeout_ns: int
    agent_reregister_timeout_ns: int
    max_completed_tasks_per_framework: int
    def __init__(self, offer_timeout_ns: _Optional[int] = ..., agent_reregister_timeout_ns: _Optional[int] = ..., max_completed_tasks_per_framework: _Optional[int] = ...) -> None: ...

class Tick(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SubscribeFramework(_message.Message):
    __slots__ = ("framework_info", "suppressed_roles", "offer_constraints", "stream_id")
    FRAMEWORK_INFO_FIELD_NUMBER: _ClassVar[int]
    SUPPRESSED_ROLES_FIELD_NUMBER: _ClassVar[int]
    OFFER_CONSTRAINTS_FIELD_NUMBER: _ClassVar[int]
    STREAM_ID_FIELD_NUMBER: _ClassVar[int]
    framework_info: _mesos_pb2.FrameworkInfo
    suppressed_roles: _containers.RepeatedScalarFieldContainer[str]
    offer_constraints: _scheduler_pb2.OfferConstraints
    stream_id: str
    def __init__(self, framework_info: _Optional[_Union[_mesos_pb2.FrameworkInfo, _Mapping]] = ..., suppressed_roles: _Optional[_Iterable[str]] = ..., offer_constraints: _Optional[_Union[_scheduler_pb2.OfferConstraints, _Mapping]] = ..., stream_id: _Optional[str] = ...) -> None: ...

class DisconnectFramework(_message.Message):
    __slots__ = ("framework_id", "stream_id")
    FRAMEWORK_ID_FIELD_NUMBER: _ClassVar[int]
    STREAM_ID_FIELD_NUMBER: _ClassVar[int]
    framework_id: str
    stream_id: str
    def __init__(self, framework_id: _Optional[str] = ..., stream_id: _Optional[str] = ...) -> None: ...

class TeardownFramework(_message.Message):
    __slots__ = ("framework_id",)
    FRAMEWORK_ID_FIELD_NUMBER: _ClassVar[int]
    framework_id: str
    def __init__(self, framework_id: _Optional[str] = ...) -> None: ...

class UpdateFramework(_message.Message):
    __slots__ = ("framework_info", "suppressed_roles", "offer_constraints")
    FRAMEWORK_INFO_FIELD_NUMBER: _ClassVar[int]
    SUPPRESSED_ROLES_FIELD_NUMBER: _ClassVar[int]
    OFFER_CONSTRAINTS_FIELD_NUMBER: _ClassVar[int]
    framework_info: _mesos_pb2.FrameworkInfo
    suppressed_roles: _containers.RepeatedScalarFieldContainer[str]
    offer_constraints: _scheduler_pb2.OfferConstraints
    def __init__(self, framework_info: _Optional[_Union[_mesos_pb2.FrameworkInfo, _Mapping]] = ..., suppressed_roles: _Optional[_Iterable[str]] = ..., offer_constraints: _Optional[_Union[_scheduler_pb2.OfferConstraints, _Mapping]] = ...) -> None: ...

class ReviveOffers(_message.Message):
    __slots__ = ("framework_id", "roles")
    FRAMEWORK_ID_FIELD_NUMBER: _ClassVar[int]
    ROLES_FIELD_NUMBER: _ClassVar[int]
    framework_id: str
    roles: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, framework_id: _Optional[str] = ..., roles: _Optional[_Iterable[str]] = ...) -> None: ...

class SuppressOffers(_message.Message):
    __slots__ = ("framework_id", "roles")
    FRAMEWORK_ID_FIELD_NUMBER: _ClassVar[int]
    ROLES_FIELD_NUMBER: _ClassVar[int]
    framework_id: str
    roles: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, framework_id: _Optional[str] = ..., roles: _Optional[_Iterable[str]] = ...) -> None: ...

class CreateOffers(_message.Message):
    __slots__ = ("offers", "base_index")
    OFFERS_FIELD_NUMBER: _ClassVar[int]
    BASE_INDEX_FIELD_NUMBER: _ClassVar[int]
    offers: _containers.RepeatedCompositeFieldContainer[OfferDecision]
    base_index: int
    def __init__(self, offers: _Optional[_Iterable[_Union[OfferDecision, _Mapping]]] = ..., base_index: _Optional[int] = ...) -> None: ...

class OfferDecision(_message.Message):
    __slots__ = ("framework_id", "agent_id", "role", "resources")
    FRAMEWORK_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    framework_id: str
    agent_id: str
    role: str
    resources: _containers.RepeatedCompositeFieldContainer[_mesos_pb2.Resource]
    def __init__(self, framework_id: _Optional[str] = ..., agent_id: _Optional[str] = ..., role: _Optional[str] = ..., resources: _Optional[_Iterable[_Union[_mesos_pb2.Resource, _Mapping]]] = ...) -> None: ...

class AcceptOffers(_message.Message):
    __slots__ = ("framework_id", "accept")
    FRAMEWORK_ID_FIELD_NUMBER: _ClassVar[int]
    ACCEPT_FIELD_NUMBER: _ClassVar[int]
    framework_id: str
    accept: _scheduler_pb2.Call.Accept
    def __init__(self, framework_id: _Optional[str] = ..., accept: _Optional[_Union[_scheduler_pb2.Call.Accept, _Mapping]] = ...) -> None: ...

class DeclineOffers(_message.Message):
    __slots__ = ("framework_id", "offer_ids", "filters")
    FRAMEWORK_ID_FIELD_NUMBER: _ClassVar[int]
    OFFER_IDS_FIELD_NUMBER: _ClassVar[int]
    FILTERS_FIELD_NUMBER: _ClassVar[int]
    framework_id: str
    offer_ids: _containers.RepeatedCompositeFieldContainer[_mesos_pb2.OfferID]
    filters: _mesos_pb2.Filters
    def __init__(self, framework_id: _Optional[str] = ..., offer_ids: _Optional[_Iterable[_Union[_mesos_pb2.OfferID, _Mapping]]] = ..., filters: _Optional[_Union[_mesos_pb2.Filters, _Mapping]] = ...) -> None: ...

class RescindOffers(_message.Message):
    __slots__ = ("offer_ids",)
    OFFER_IDS_FIELD_NUMBER: _ClassVar[int]
    offer_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, offer_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class KillTask(_message.Message):
    __slots__ = ("framework_id", "task_id", "agent_id", "kill_policy")
    FRAMEWORK_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    KILL_POLICY_FIELD_NUMBER: _ClassVar[int]
    framework_id: str
    task_id: str
    agent_id: str
    kill_policy: _mesos_pb2.KillPolicy
    def __init__(self, framework_id: _Optional[str] = ..., task_id: _Optional[str] = ..., agent_id: _Optional[str] = ..., kill_policy: _Optional[_Union[_mesos_pb2.KillPolicy, _Mapping]] = ...) -> None: ...

class UpdateTaskStatus(_message.Message):
    __slots__ = ("agent_id", "framework_id", "status", "latest_state")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    FRAMEWORK_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    LATEST_STATE_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    framework_id: str
    status: _mesos_pb2.TaskStatus
    latest_state: _mesos_pb2.TaskState
    def __init__(self, agent_id: _Optional[str] = ..., framework_id: _Optional[str] = ..., status: _Optional[_Union[_mesos_pb2.TaskStatus, _Mapping]] = ..., latest_state: _Optional[_Union[_mesos_pb2.TaskState, str]] = ...) -> None: ...

class AcknowledgeTaskStatus(_message.Message):
    __slots__ = ("framework_id", "agent_id", "task_id", "uuid")
    FRAMEWORK_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    UUID_FIELD_NUMBER: _ClassVar[int]
    framework_id: str
    agent_id: str
    task_id: str
    uuid: bytes
    def __init__(self, framework_id: _Optional[str] = ..., agent_id: _Optional[str] = ..., task_id: _Optional[str] = ..., uuid: _Optional[bytes] = ...) -> None: ...

class ShutdownExecutor(_message.Message):
    __slots__ = ("framework_id", "agent_id", "executor_id")
    FRAMEWORK_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    EXECUTOR_ID_FIELD_NUMBER: _ClassVar[int]
    framework_id: str
    agent_id: str
    executor_id: str
    def __init__(self, framework_id: _Optional[str] = ..., agent_id: _Optional[str] = ..., executor_id: _Optional[str] = ...) -> None: ...

class ExitExecutor(_message.Message):
    __slots__ = ("agent_id", "framework_id", "executor_id", "status")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    FRAMEWORK_ID_FIELD_NUMBER: _ClassVar[int]
    EXECUTOR_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    framework_id: str
    executor_id: str
    status: int
    def __init__(self, agent_id: _Optional[str] = ..., framework_id: _Optional[str] = ..., executor_id: _Optional[str] = ..., status: _Optional[int] = ...) -> None: ...

class RegisterAgent(_message.Message):
    __slots__ = ("agent_info", "capabilities", "version", "stream_id", "ip")
    AGENT_INFO_FIELD_NUMBER: _ClassVar[int]
    CAPABILITIES_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    STREAM_ID_FIELD_NUMBER: _ClassVar[int]
    IP_FIELD_NUMBER: _ClassVar[int]
    agent_info: _mesos_pb2.AgentInfo
    capabilities: _containers.RepeatedCompositeFieldContainer[_mesos_pb2.AgentInfo.Capability]
    version: str
    stream_id: str
    ip: str
    def __init__(self, agent_info: _Optional[_Union[_mesos_pb2.AgentInfo, _Mapping]] = ..., capabilities: _Optional[_Iterable[_Union[_mesos_pb2.AgentInfo.Capability, _Mapping]]] = ..., version: _Optional[str] = ..., stream_id: _Optional[str] = ..., ip: _Optional[str] = ...) -> None: ...

class ReregisterAgent(_message.Message):
    __slots__ = ("agent_info", "capabilities", "version", "stream_id", "tasks", "executors", "frameworks", "ip")
    AGENT_INFO_FIELD_NUMBER: _ClassVar[int]
    CAPABILITIES_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    STREAM_ID_FIELD_NUMBER: _ClassVar[int]
    TASKS_FIELD_NUMBER: _ClassVar[int]
    EXECUTORS_FIELD_NUMBER: _ClassVar[int]
    FRAMEWORKS_FIELD_NUMBER: _ClassVar[int]
    IP_FIELD_NUMBER: _ClassVar[int]
    agent_info: _mesos_pb2.AgentInfo
    capabilities: _containers.RepeatedCompositeFieldContainer[_mesos_pb2.AgentInfo.Capability]
    version: str
    stream_id: str
    tasks: _containers.RepeatedCompositeFieldContainer[_mesos_pb2.Task]
    executors: _containers.RepeatedCompositeFieldContainer[_mesos_pb2.ExecutorInfo]
    frameworks: _containers.RepeatedCompositeFieldContainer[_mesos_pb2.FrameworkInfo]
    ip: str
    def __init__(self, agent_info: _Optional[_Union[_mesos_pb2.AgentInfo, _Mapping]] = ..., capabilities: _Optional[_Iterable[_Union[_mesos_pb2.AgentInfo.Capability, _Mapping]]] = ..., version: _Optional[str] = ..., stream_id: _Optional[str] = ..., tasks: _Optional[_Iterable[_Union[_mesos_pb2.Task, _Mapping]]] = ..., executors: _Optional[_Iterable[_Union[_mesos_pb2.ExecutorInfo, _Mapping]]] = ..., frameworks: _Optional[_Iterable[_Union[_mesos_pb2.FrameworkInfo, _Mapping]]] = ..., ip: _Optional[str] = ...) -> None: ...

class DisconnectAgent(_message.Message):
    __slots__ = ("agent_id", "stream_id")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    STREAM_ID_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    stream_id: str
    def __init__(self, agent_id: _Optional[str] = ..., stream_id: _Optional[str] = ...) -> None: ...

class MarkAgentUnreachable(_message.Message):
    __slots__ = ("agent_id", "message")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    message: str
    def __init__(self, agent_id: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class MarkAgentGone(_message.Message):
    __slots__ = ("agent_id",)
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    def __init__(self, agent_id: _Optional[str] = ...) -> None: ...

class UnregisterAgent(_message.Message):
    __slots__ = ("agent_id",)
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    def __init__(self, agent_id: _Optional[str] = ...) -> None: ...

class DeactivateAgent(_message.Message):
    __slots__ = ("agent_id",)
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    def __init__(self, agent_id: _Optional[str] = ...) -> None: ...

class ReactivateAgent(_message.Message):
    __slots__ = ("agent_id",)
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    def __init__(self, agent_id: _Optional[str] = ...) -> None: ...

class DrainAgent(_message.Message):
    __slots__ = ("agent_id", "config")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    config: _mesos_pb2.DrainConfig
    def __init__(self, agent_id: _Optional[str] = ..., config: _Optional[_Union[_mesos_pb2.DrainConfig, _Mapping]] = ...) -> None: ...

class ApplyResourceOperation(_message.Message):
    __slots__ = ("agent_id", "operation")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    OPERATION_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    operation: _mesos_pb2.Offer.Operation
    def __init__(self, agent_id: _Optional[str] = ..., operation: _Optional[_Union[_mesos_pb2.Offer.Operation, _Mapping]] = ...) -> None: ...

class UpdateMaintenanceSchedule(_message.Message):
    __slots__ = ("schedule",)
    SCHEDULE_FIELD_NUMBER: _ClassVar[int]
    schedule: _maintenance_pb2.Schedule
    def __init__(self, schedule: _Optional[_Union[_maintenance_pb2.Schedule, _Mapping]] = ...) -> None: ...

class StartMaintenance(_message.Message):
    __slots__ = ("machines",)
    MACHINES_FIELD_NUMBER: _ClassVar[int]
    machines: _containers.RepeatedCompositeFieldContainer[_mesos_pb2.MachineID]
    def __init__(self, machines: _Optional[_Iterable[_Union[_mesos_pb2.MachineID, _Mapping]]] = ...) -> None: ...

class StopMaintenance(_message.Message):
    __slots__ = ("machines",)
    MACHINES_FIELD_NUMBER: _ClassVar[int]
    machines: _containers.RepeatedCompositeFieldContainer[_mesos_pb2.MachineID]
    def __init__(self, machines: _Optional[_Iterable[_Union[_mesos_pb2.MachineID, _Mapping]]] = ...) -> None: ...

class RespondToInverseOffers(_message.Message):
    __slots__ = ("framework_id", "inverse_offer_ids", "accept", "filters")
    FRAMEWORK_ID_FIELD_NUMBER: _ClassVar[int]
    INVERSE_OFFER_IDS_FIELD_NUMBER: _ClassVar[int]
    ACCEPT_FIELD_NUMBER: _ClassVar[int]
    FILTERS_FIELD_NUMBER: _ClassVar[int]
    framework_id: str
    inverse_offer_ids: _containers.RepeatedScalarFieldContainer[str]
    accept: bool
    filters: _mesos_pb2.Filters
    def __init__(self, framework_id: _Optional[str] = ..., inverse_offer_ids: _Optional[_Iterable[str]] = ..., accept: _Optional[bool] = ..., filters: _Optional[_Union[_mesos_pb2.Filters, _Mapping]] = ...) -> None: ...
