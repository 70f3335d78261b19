from meseta.proto.mesos.v1 import mesos_pb2 as _mesos_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Call(_message.Message):
    __slots__ = ("type", "agent_id", "subscribe", "update", "executor_exited", "message", "updates")
    class Type(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        UNKNOWN: _ClassVar[Call.Type]
        SUBSCRIBE: _ClassVar[Call.Type]
        UPDATE: _ClassVar[Call.Type]
        EXECUTOR_EXITED: _ClassVar[Call.Type]
        MESSAGE: _ClassVar[Call.Type]
        HEARTBEAT: _ClassVar[Call.Type]
        UPDATES: _ClassVar[Call.Type]
        UNREGISTER: _ClassVar[Call.Type]
    UNKNOWN: Call.Type
    SUBSCRIBE: Call.Type
    UPDATE: Call.Type
    EXECUTOR_EXITED: Call.Type
    MESSAGE: Call.Type
    HEARTBEAT: Call.Type
    UPDATES: Call.Type
    UNREGISTER: Call.Type
    class Subscribe(_message.Message):
        __slots__ = ("agent_info", "capabilities", "version", "tasks", "executors", "frameworks", "ip")
        AGENT_INFO_FIELD_NUMBER: _ClassVar[int]
        CAPABILITIES_FIELD_NUMBER: _ClassVar[int]
        VERSION_FIELD_NUMBER: _ClassVar[int]
        TASKS_FIELD_NUMBER: _ClassVar[int]
        EXECUTORS_FIELD_NUMBER: _ClassVar[int]
        FRAMEWORKS_FIELD_NUMBER: _ClassVar[int]
        IP_FIELD_NUMBER: _ClassVar[int]
        agent_info: _mesos_pb2.AgentInfo
        capabilities: _containers.RepeatedCompositeFieldContainer[_mesos_pb2.AgentInfo.Capability]
        version: str
        tasks: _containers.RepeatedCompositeFieldContainer[_mesos_pb2.Task]
        executors: _containers.RepeatedCompositeFieldContainer[_mesos_pb2.ExecutorInfo]
        frameworks: _containers.RepeatedCompositeFieldContainer[_mesos_pb2.FrameworkInfo]
        ip: str
        def __init__(self, agent_info: _Optional[_Union[_mesos_pb2.AgentInfo, _Mapping]] = ..., capabilities: _Optional[_Iterable[_Union[_mesos_pb2.AgentInfo.Capability, _Mapping]]] = ..., version: _Optional[str] = ..., tasks: _Optional[_Iterable[_Union[_mesos_pb2.Task, _Mapping]]] = ..., executors: _Optional[_Iterable[_Union[_mesos_pb2.ExecutorInfo, _Mapping]]] = ..., frameworks: _Optional[_Iterable[_Union[_mesos_pb2.FrameworkInfo, _Mapping]]] = ..., ip: _Optional[str] = ...) -> None: ...
    class Update(_message.Message):
        __slots__ = ("framework_id", "status", "latest_state")
        FRAMEWORK_ID_FIELD_NUMBER: _ClassVar[int]
        STATUS_FIELD_NUMBER: _ClassVar[int]
        LATEST_STATE_FIELD_NUMBER: _ClassVar[int]
        framework_id: _mesos_pb2.FrameworkID
        status: _mesos_pb2.TaskStatus
        latest_state: _mesos_pb2.TaskState
        def __init__(self, framework_id: _Optional[_Union[_mesos_pb2.FrameworkID, _Mapping]] = ..., status: _Optional[_Union[_mesos_pb2.TaskStatus, _Mapping]] = ..., latest_state: _Optional[_Union[_mesos_pb2.TaskState, str]] = ...) -> None: ...
    class ExecutorExited(_message.Message):
        __slots__ = ("framework_id", "executor_id", "status")
        FRAMEWORK_ID_FIELD_NUMBER: _ClassVar[int]
        EXECUTOR_ID_FIELD_NUMBER: _ClassVar[int]
        STATUS_FIELD_NUMBER: _ClassVar[int]
        framework_id: _mesos_pb2.FrameworkID
        executor_id: _mesos_pb2.ExecutorID
        status: int
        def __init__(self, framework_id: _Optional[_Union[_mesos_pb2.FrameworkID, _Mapping]] = ..., executor_id: _Optional[_Union[_mesos_pb2.ExecutorID, _Mapping]] = ..., status: _Optional[int] = ...) -> None: ...
    class Message(_message.Message):
        __slots__ = ("framework_id", "executor_id", "data")
        FRAMEWORK_ID_FIELD_NUMBER: _ClassVar[int]
        EXECUTOR_ID_FIELD_NUMBER: _ClassVar[int]
        DATA_FIELD_NUMBER: _ClassVar[int]
        framework_id: _mesos_pb2.FrameworkID
        executor_id: _mesos_pb2.ExecutorID
        data: bytes
        def __init__(self, framework_id: _Optional[_Union[_mesos_pb2.FrameworkID, _Mapping]] = ..., executor_id: _Optional[_Union[_mesos_pb2.ExecutorID, _Mapping]] = ..., data: _Optional[bytes] = ...) -> None: ...
    TYPE_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIBE_FIELD_NUMBER: _ClassVar[int]
    UPDATE_FIELD_NUMBER: _ClassVar[int]
    EXECUTOR_EXITED_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    UPDATES_FIELD_NUMBER: _ClassVar[int]
    type: Call.Type
    agent_id: _mesos_pb2.AgentID
    subscribe: Call.Subscribe
    update: Call.Update
    executor_exited: Call.ExecutorExited
    message: Call.Message
    updates: _containers.RepeatedCompositeFieldContainer[Call.Update]
    def __init__(self, type: _Optional[_Union[Call.Type, str]] = ..., agent_id: _Optional[_Union[_mesos_pb2.AgentID, _Mapping]] = ..., subscribe: _Optional[_Union[Call.Subscribe, _Mapping]] = ..., update: _Optional[_Union[Call.Update, _Mapping]] = ..., executor_exited: _Optional[_Union[Call.ExecutorExited, _Mapping]] = ..., message: _Optional[_Union[Call.Message, _Mapping]] = ..., updates: _Optional[_Iterable[_Union[Call.Update, _Mapping]]] = ...) -> None: ...

class Event(_message.Message):
    __slots__ = ("type", "subscribed", "run_task", "run_task_group", "kill_task", "acknowledge", "shutdown_executor", "shutdown_framework", "reconcile_tasks", "message", "error", "drain", "checkpoint_resources")
    class Type(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        UNKNOWN: _ClassVar[Event.Type]
        SUBSCRIBED: _ClassVar[Event.Type]
        RUN_TASK: _ClassVar[Event.Type]
        RUN_TASK_GROUP: _ClassVar[Event.Type]
        KILL_TASK: _ClassVar[Event.Type]
        ACKNOWLEDGE: _ClassVar[Event.Type]
        SHUTDOWN_EXECUTOR: _ClassVar[Event.Type]
        SHUTDOWN_FRAMEWORK: _ClassVar[Event.Type]
        RECONCILE_TASKS: _ClassVar[Event.Type]
        MESSAGE: _ClassVar[Event.Type]
        HEARTBEAT: _ClassVar[Event.Type]
        ERROR: _ClassVar[Event.Type]
        SHUTDOWN: _ClassVar[Event.Type]
        DRAIN: _ClassVar[Event.Type]
        CHECKPOINT_RESOURCES: _ClassVar[Event.Type]
    UNKNOWN: Event.Type
    SUBSCRIBED: Event.Type
    RUN_TASK: Event.Type
    RUN_TASK_GROUP: Event.Type
    KILL_TASK: Event.Type
    ACKNOWLEDGE: Event.Type
    SHUTDOWN_EXECUTOR: Event.Type
    SHUTDOWN_FRAMEWORK: Event.Type
    RECONCILE_TASKS: Event.Type
    MESSAGE: Event.Type
    HEARTBEAT: Event.Type
    ERROR: Event.Type
    SHUTDOWN: Event.Type
    DRAIN: Event.Type
    CHECKPOINT_RESOURCES: Event.Type
    class Subscribed(_message.Message):
        __slots__ = ("agent_id", "heartbeat_interval_seconds", "master_info")
        AGENT_ID_FIELD_NUMBER: _ClassVar[int]
        HEARTBEAT_INTERVAL_SECONDS_FIELD_NUMBER: _ClassVar[int]
        MASTER_INFO_FIELD_NUMBER: _ClassVar[int]
        agent_id: _mesos_pb2.AgentID
        heartbeat_interval_seconds: float
        master_info: _mesos_pb2.MasterInfo
        def __init__(self, agent_id: _Optional[_Union[_mesos_pb2.AgentID, _Mapping]] = ..., heartbeat_interval_seconds: _Optional[float] = ..., master_info: _Optional[_Union[_mesos_pb2.MasterInfo, _Mapping]] = ...) -> None: ...
    class RunTask(_message.Message):
        __slots__ = ("framework_info", "executor_info", "task")
        FRAMEWORK_INFO_FIELD_NUMBER: _ClassVar[int]
        EXECUTOR_INFO_FIELD_NUMBER: _ClassVar[int]
        TASK_FIELD_NUMBER: _ClassVar[int]
        framework_info: _mesos_pb2.FrameworkInfo
        executor_info: _mesos_pb2.ExecutorInfo
        task: _mesos_pb2.TaskInfo
        def __init__(self, framework_info: _Optional[_Union[_mesos_pb2.FrameworkInfo, _Mapping]] = ..., executor_info: _Optional[_Union[_mesos_pb2.ExecutorInfo, _Mapping]] = ..., task: _Optional[_Union[_mesos_pb2.TaskInfo, _Mapping]] = ...) -> None: ...
    class RunTaskGroup(_message.Message):
        __slots__ = ("framework_info", "executor_info", "task_group")
        FRAMEWORK_INFO_FIELD_NUMBER: _ClassVar[int]
        EXECUTOR_INFO_FIELD_NUMBER: _ClassVar[int]
        TASK_GROUP_FIELD_NUMBER: _ClassVar[int]
        framework_info: _mesos_pb2.FrameworkInfo
        executor_info: _mesos_pb2.ExecutorInfo
        task_group: _mesos_pb2.TaskGroupInfo
        def __init__(self, framework_info: _Optional[_Union[_mesos_pb2.FrameworkInfo, _Mapping]] = ..., executor_info: _Optional[_Union[_mesos_pb2.ExecutorInfo, _Mapping]] = ..., task_group: _Optional[_Union[_mesos_pb2.TaskGroupInfo, _Mapping]] = ...) -> None: ...
    class KillTask(_message.Message):
        __slots__ = ("framework_id", "task_id", "kill_policy")
        FRAMEWORK_ID_FIELD_NUMBER: _ClassVar[int]
        TASK_ID_FIELD_NUMBER: _ClassVar[int]
        KILL_POLICY_FIELD_NUMBER: _ClassVar[int]
        framework_id: _mesos_pb2.FrameworkID
        task_id: _mesos_pb2.TaskID
        kill_policy: _mesos_pb2.KillPolicy
        def __init__(self, framework_id: _Optional[_Union[_mesos_pb2.FrameworkID, _Mapping]] = ..., task_id: _Optional[_Union[_mesos_pb2.TaskID, _Mapping]] = ..., kill_policy: _Optional[_Union[_mesos_pb2.KillPolicy, _Mapping]] = ...) -> None: ...
    class Acknowledge(_message.Message):
        __slots__ = ("framework_id", "task_id", "uuid")
        FRAMEWORK_ID_FIELD_NUMBER: _ClassVar[int]
        TASK_ID_FIELD_NUMBER: _ClassVar[int]
        UUID_FIELD_NUMBER: _ClassVar[int]
        framework_id: _mesos_pb2.FrameworkID
        task_id: _mesos_pb2.TaskID
        uuid: bytes
        def __init__(self, framework_id: _Optional[_Union[_mesos_pb2.FrameworkID, _Mapping]] = ..., task_id: _Optional[_Union[_mesos_pb2.TaskID, _Mapping]] = ..., uuid: _Optional[bytes] = ...) -> None: ...
    class ShutdownExecutor(_message.Message):
        __slots__ = ("framework_id", "executor_id")
        FRAMEWORK_ID_FIELD_NUMBER: _ClassVar[int]
        EXECUTOR_ID_FIELD_NUMBER: _ClassVar[int]
        framework_id: _mesos_pb2.FrameworkID
        executor_id: _mesos_pb2.ExecutorID
        def __init__(self, framework_id: _Optional[_Union[_mesos_pb2.FrameworkID, _Mapping]] = ..., executor_id: _Optional[_Union[_mesos_pb2.ExecutorID, _Mapping]] = ...) -> None: ...
    class ShutdownFramework(_message.Message):
        __slots__ = ("framework_id",)
        FRAMEWORK_ID_FIELD_NUMBER: _ClassVar[int]
        framework_id: _mesos_pb2.FrameworkID
        def __init__(self, framework_id: _Optional[_Union[_mesos_pb2.FrameworkID, _Mapping]] = ...) -> None: ...
    class ReconcileTasks(_message.Message):
        __slots__ = ("framework_id", "task_ids")
        FRAMEWORK_ID_FIELD_NUMBER: _ClassVar[int]
        TASK_IDS_FIELD_NUMBER: _ClassVar[int]
        framework_id: _mesos_pb2.FrameworkID
        task_ids: _containers.RepeatedCompositeFieldContainer[_mesos_pb2.TaskID]
        def __init__(self, framework_id: _Optional[_Union[_mesos_pb2.FrameworkID, _Mapping]] = ..., task_ids: _Optional[_Iterable[_Union[_mesos_pb2.TaskID, _Mapping]]] = ...) -> None: ...
    class Message(_message.Message):
        __slots__ = ("framework_id", "executor_id", "data")
        FRAMEWORK_ID_FIELD_NUMBER: _ClassVar[int]
        EXECUTOR_ID_FIELD_NUMBER: _ClassVar[int]
        DATA_FIELD_NUMBER: _ClassVar[int]
        framework_id: _mesos_pb2.FrameworkID
        executor_id: _mesos_pb2.ExecutorID
        data: bytes
        def __init__(self, framework_id: _Optional[_Union[_mesos_pb2.FrameworkID, _Mapping]] = ..., executor_id: _Optional[_Union[_mesos_pb2.ExecutorID, _Mapping]] = ..., data: _Optional[bytes] = ...) -> None: ...
    class Error(_message.Message):
        __slots__ = ("message",)
        MESSAGE_FIELD_NUMBER: _ClassVar[int]
        message: str
        def __init__(self, message: _Optional[str] = ...) -> None: ...
    class Drain(_message.Message):
        __slots__ = ("config",)
        CONFIG_FIELD_NUMBER: _ClassVar[int]
        config: _mesos_pb2.DrainConfig
        def __init__(self, config: _Optional[_Union[_mesos_pb2.DrainConfig, _Mapping]] = ...) -> None: ...
    class CheckpointResources(_message.Message):
        __slots__ = ("resources",)
        RESOURCES_FIELD_NUMBER: _ClassVar[int]
        resources: _containers.RepeatedCompositeFieldContainer[_mesos_pb2.Resource]
        def __init__(self, resources: _Optional[_Iterable[_Union[_mesos_pb2.Resource, _Mapping]]] = ...) -> None: ...
    TYPE_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIBED_FIELD_NUMBER: _ClassVar[int]
    RUN_TASK_FIELD_NUMBER: _ClassVar[int]
    RUN_TASK_GROUP_FIELD_NUMBER: _ClassVar[int]
    KILL_TASK_FIELD_NUMBER: _ClassVar[int]
    ACKNOWLEDGE_FIELD_NUMBER: _ClassVar[int]
    SHUTDOWN_EXECUTOR_FIELD_NUMBER: _ClassVar[int]
    SHUTDOWN_FRAMEWORK_FIELD_NUMBER: _ClassVar[int]
    RECONCILE_TASKS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    DRAIN_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_RESOURCES_FIELD_NUMBER: _ClassVar[int]
    type: Event.Type
    subscribed: Event.Subscribed
    run_task: Event.RunTask
    run_task_group: Event.RunTaskGroup
    kill_task: Event.KillTask
    acknowledge: Event.Acknowledge
    shutdown_executor: Event.ShutdownExecutor
    shutdown_framework: Event.ShutdownFramework
    reconcile_tasks: Event.ReconcileTasks
    message: Event.Message
    error: Event.Error
    drain: Event.Drain
    checkpoint_resources: Event.CheckpointResources
    def __init__(self, type: _Optional[_Union[Event.Type, str]] = ..., subscribed: _Optional[_Union[Event.Subscribed, _Mapping]] = ..., run_task: _Optional[_Union[Event.RunTask, _Mapping]] = ..., run_task_group: _Optional[_Union[Event.RunTaskGroup, _Mapping]] = ..., kill_task: _Optional[_Union[Event.KillTask, _Mapping]] = ..., acknowledge: _Optional[_Union[Event.Acknowledge, _Mapping]] = ..., shutdown_executor: _Optional[_Union[Event.ShutdownExecutor, _Mapping]] = ..., shutdown_framework: _Optional[_Union[Event.ShutdownFramework, _Mapping]] = ..., reconcile_tasks: _Optional[_Union[Event.ReconcileTasks, _Mapping]] = ..., message: _Optional[_Union[Event.Message, _Mapping]] = ..., error: _Optional[_Union[Event.Error, _Mapping]] = ..., drain: _Optional[_Union[Event.Drain, _Mapping]] = ..., checkpoint_resources: _Optional[_Union[Event.CheckpointResources, _Mapping]] = ...) -> None: ...
