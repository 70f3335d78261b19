"""Maintenance primitives' rules (Mesos's master/maintenance.cpp): how machines are named
and compared, and which schedules and machine lists an operator may post.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping

from meseta.master import state
from meseta.master.state import Machine, MachineKey
from meseta.proto.mesos.v1 import mesos_pb2
from meseta.proto.mesos.v1.maintenance import maintenance_pb2

DRAINING = mesos_pb2.MachineInfo.DRAINING
DOWN = mesos_pb2.MachineInfo.DOWN


def machine_key(machine: mesos_pb2.MachineID) -> MachineKey:
    """Machines are the same when their hostnames match but for case and their IPs match."""
    return state.machine_key(machine.hostname, machine.ip)


def machine_text(machine: mesos_pb2.MachineID) -> str:
    """A machine as Mesos's messages write it: its JSON, set fields only."""
    fields = []
    if machine.HasField("hostname"):
        fields.append(f'"hostname":"{machine.hostname}"')
    if machine.HasField("ip"):
        fields.append(f'"ip":"{machine.ip}"')
    return "{" + ",".join(fields) + "}"


def machine_error(machine: mesos_pb2.MachineID) -> str | None:
    if not machine.hostname and not machine.ip:
        return "Both 'hostname' and 'ip' for a machine are empty"
    if machine.ip:
        try:
            ipaddress.IPv4Address(machine.ip)
        except ValueError:
            return f"Failed to parse IPv4: {machine.ip}"
    return None


def machines_error(machines: Iterable[mesos_pb2.MachineID]) -> str | None:
    """Mesos's validation::machines for START_MAINTENANCE and STOP_MAINTENANCE."""
    seen: dict[MachineKey, None] = {}
    for machine in machines:
        error = machine_error(machine)
        if error is not None:
            return error
        if machine_key(machine) in seen:
            return f"Machine '{machine_text(machine)}' appears more than once in the schedule"
        seen[machine_key(machine)] = None
    if not seen:
        return "List of machines is empty"
    return None


def schedule_error(
    schedule: maintenance_pb2.Schedule,
    machines: Mapping[MachineKey, Machine],
) -> str | None:
    """Mesos's validation::schedule: windows name machines and a non-negative duration, a
    machine appears once, and a DOWN machine may not leave the schedule."""
    listed: dict[MachineKey, None] = {}
    for window in schedule.windows:
        if not window.machine_ids:
            return "List of machines in the maintenance window is empty"
        if window.unavailability.duration.nanoseconds < 0:
            return "Unavailability 'duration' is negative"
        for machine in window.machine_ids:
            error = machine_error(machine)
            if error is not None:
                return error
            if machine_key(machine) in listed:
                return f"Machine '{machine_text(machine)}' appears more than once in the schedule"
            listed[machine_key(machine)] = None
    for key, scheduled in machines.items():
        if scheduled.mode == DOWN and key not in listed:
            return (
                f"Machine '{machine_text(scheduled.id)}' is deactivated and cannot be removed"
                " from the schedule"
            )
    return None
