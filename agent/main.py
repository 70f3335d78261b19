"""`meseta agent`: run an agent until SIGTERM/SIGINT (executors keep running), or until
SIGUSR1 (it unregisters from the master and kills its executors, as Mesos's agent)."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from meseta.agent import detect, flags
from meseta.agent.containerizer import Containerizer
from meseta.agent.daemon import Agent, RecoveryError
from meseta.agent.server import AgentServer
from meseta.api.flags import FlagLoadError, configure_logging
from meseta.proto.mesos.v1 import mesos_pb2

EXIT_RECOVERY_FAILED = 1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    flags.add_arguments(parser)


def agent_info(options: flags.AgentFlags) -> mesos_pb2.AgentInfo:
    """AgentInfo from the flags; ResourceFlagError for a bad --resources/--attributes."""
    info = mesos_pb2.AgentInfo(hostname=options.advertised_host, port=options.port)
    info.resources.extend(
        detect.agent_resources(options.work_dir, options.resources, options.default_role)
    )
    if options.attributes:
        info.attributes.extend(detect.parse_attributes(options.attributes))
    return info


def run(options: argparse.Namespace) -> int:
    try:
        parsed = flags.from_options(options)
        info = agent_info(parsed)
        configure_logging(parsed.logging_level, parsed.log_dir, "agent", quiet=parsed.quiet)
    except (flags.FlagError, detect.ResourceFlagError, FlagLoadError) as error:
        print(f"meseta agent: {error}", file=sys.stderr)
        return flags.EXIT_BAD_FLAGS
    return asyncio.run(serve(parsed, info))


async def serve(options: flags.AgentFlags, info: mesos_pb2.AgentInfo) -> int:
    options.work_dir.mkdir(parents=True, exist_ok=True)
    agent = Agent(options, info, Containerizer(options.work_dir))
    server = AgentServer(agent)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    # As Mesos's agent: SIGUSR1 unregisters, kills every task and forgets this agent.
    loop.add_signal_handler(signal.SIGUSR1, agent.request_unregister, "Received SIGUSR1 signal")
    try:
        await server.start()
        try:
            if not await agent.recover():
                print("meseta agent: --recover=cleanup: old executors killed", file=sys.stderr)
                return 0
        except RecoveryError as error:
            print(f"meseta agent: recovery failed: {error}", file=sys.stderr)
            return EXIT_RECOVERY_FAILED
        await agent.start()
        shutdown = loop.create_task(agent.shutdown_requested.wait())
        stopped = loop.create_task(stop.wait())
        await asyncio.wait({shutdown, stopped}, return_when=asyncio.FIRST_COMPLETED)
        shutdown.cancel()
        stopped.cancel()
        return 0
    finally:
        await agent.stop()
        await server.stop()
