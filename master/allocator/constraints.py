"""Offer constraints (contract 2.6): which agents a framework's role may be offered.

Per role, groups are OR-ed and the attribute constraints in a group AND-ed,
evaluated as Mesos's `OfferConstraintsFilter` does: the first attribute with
the selected name counts, and an attribute that exists but is not TEXT
satisfies every text predicate (Mesos cannot compare it as text, so it does
not exclude on it). A role with constraints but no groups excludes every agent.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from meseta.proto.mesos.v1 import mesos_pb2
from meseta.proto.mesos.v1.scheduler import scheduler_pb2

_Selector = scheduler_pb2.AttributeConstraint.Selector


class Seen(enum.Enum):
    """What a selector finds on an agent, besides a text value."""

    MISSING = "missing"
    NOT_TEXT = "not text"


Value = str | Seen


@dataclass(frozen=True, slots=True)
class Check:
    """One attribute constraint, ready to evaluate."""

    pseudo: int  # a PseudoattributeType, or 0 (UNKNOWN) for a named attribute
    name: str
    predicate: str  # the oneof case name, e.g. "text_equals"; "" when unset
    text: str = ""
    pattern: re.Pattern[str] | None = None
    valid: bool = True  # False: unknown selector/predicate or bad regex; never satisfied


Expression = tuple[tuple[Check, ...], ...]  # OR of groups, AND within a group


def compile_constraints(
    constraints: scheduler_pb2.OfferConstraints | None,
) -> dict[str, Expression]:
    """Role -> expression, for the roles that have constraints."""
    if constraints is None:
        return {}
    return {
        role: tuple(
            tuple(compile_check(constraint) for constraint in group.attribute_constraints)
            for group in role_constraints.groups
        )
        for role, role_constraints in sorted(constraints.role_constraints.items())
    }


def compile_check(constraint: scheduler_pb2.AttributeConstraint) -> Check:
    selector, predicate = constraint.selector, constraint.predicate
    kind = selector.WhichOneof("selector")
    pseudo = selector.pseudoattribute_type if kind == "pseudoattribute_type" else 0
    valid = kind == "attribute_name" or pseudo in (
        _Selector.HOSTNAME,
        _Selector.REGION,
        _Selector.ZONE,
    )
    case = predicate.WhichOneof("predicate") or ""
    text, pattern = "", None
    if case == "text_equals":
        text = predicate.text_equals.value
    elif case == "text_not_equals":
        text = predicate.text_not_equals.value
    elif case in ("text_matches", "text_not_matches"):
        regex = getattr(predicate, case).regex
        try:
            pattern = re.compile(regex)
        except re.error:
            valid = False
    elif case not in ("exists", "not_exists"):
        valid = False
    return Check(pseudo, selector.attribute_name, case, text, pattern, valid)


def excludes(expression: Expression, info: mesos_pb2.AgentInfo) -> bool:
    """Whether the expression rules this agent out (no group fully satisfied)."""
    for group in expression:
        if all(satisfied(check, selected(check, info)) for check in group):
            return False
    return True


def selected(check: Check, info: mesos_pb2.AgentInfo) -> Value:
    if check.pseudo == _Selector.HOSTNAME:
        return info.hostname
    if check.pseudo in (_Selector.REGION, _Selector.ZONE):
        if not (info.HasField("domain") and info.domain.HasField("fault_domain")):
            return Seen.MISSING
        fault_domain = info.domain.fault_domain
        place = fault_domain.region if check.pseudo == _Selector.REGION else fault_domain.zone
        return place.name
    for attribute in info.attributes:
        if attribute.name == check.name:
            return attribute.text.value if attribute.type == mesos_pb2.Value.TEXT else Seen.NOT_TEXT
    return Seen.MISSING


def satisfied(check: Check, value: Value) -> bool:
    if not check.valid:
        return False
    predicate = check.predicate
    if predicate == "exists":
        return value is not Seen.MISSING
    if predicate == "not_exists":
        return value is Seen.MISSING
    negated = predicate in ("text_not_equals", "text_not_matches")
    if value is Seen.MISSING:
        return negated
    if value is Seen.NOT_TEXT:
        return True
    assert isinstance(value, str)
    if check.pattern is not None:
        matched = check.pattern.fullmatch(value) is not None
    else:
        matched = value == check.text
    return matched != negated
