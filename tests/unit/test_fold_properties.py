"""Property: random command sequences keep every fold invariant and never revive a terminal task.

A hypothesis state machine drives `support.fold_cluster.Cluster` (which checks
`invariants.check` and terminal-task stability after every entry) with commands
from `support.fold_workload.Workload`, one command per entry; every choice the
workload makes is a hypothesis draw, so failures shrink to short sequences.
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule
from support.fold_cluster import Cluster
from support.fold_workload import AGENT_RESOURCES, WEIGHTS, HypothesisChooser, Workload

from meseta.master import fold
from meseta.master.digest import digest
from meseta.master.state import State


class FoldMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.cluster = Cluster()
        self.workload: Workload | None = None

    @initialize(data=st.data())
    def start(self, data: st.DataObject) -> None:
        # Start from a small live cluster so that short runs reach tasks.
        for host in ("h0", "h1"):
            self.cluster.add_agent(host, resources=AGENT_RESOURCES)
        self.cluster.add_framework("pa", partition_aware=True, failover_timeout=60)
        self.cluster.add_framework("legacy", checkpoint=True, roles=["a", "b"])
        self.workload = Workload(self.cluster.state, HypothesisChooser(data.draw))

    def apply(self, data: st.DataObject, kind: str) -> None:
        assert self.workload is not None
        self.workload.rng = HypothesisChooser(data.draw)
        built = getattr(self.workload, kind)()
        if built is not None:
            advance = self.workload.rng.choice((1_000_000, 10**9, 700 * 10**9))
            self.cluster.batch([built], advance_ns=advance)

    @rule(data=st.data(), kind=st.sampled_from(sorted(WEIGHTS)))
    def step(self, data: st.DataObject, kind: str) -> None:
        self.apply(data, kind)

    @rule(
        data=st.data(),
        kind=st.sampled_from(
            ["update_task_status", "acknowledge_task_status", "create_offers", "accept_offers"]
        ),
    )
    def hot_step(self, data: st.DataObject, kind: str) -> None:
        self.apply(data, kind)

    @invariant()
    def checked(self) -> None:
        # Cluster.verify ran after every entry; check once more at every step boundary.
        self.cluster.verify()

    def teardown(self) -> None:
        # The same entries replayed from scratch give the same state.
        replayed = State()
        for index, entry in enumerate(self.cluster.entries, start=1):
            fold.apply(replayed, entry, index)
        assert digest(replayed) == digest(self.cluster.state)


FoldMachine.TestCase.settings = settings(
    max_examples=100,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
TestFoldProperties = FoldMachine.TestCase
