"""Which policy rule a reported verdict implies, and where a gateway's feed serial stood.

Gateway reports (ADR 0010) count flows per registration x protocol x verdict without the rule
that decided. Given the registration's terms the rule follows from the truth table
(docs/policy.md): a registered flow passed by `registered-listed-peer` when the registration
lists peers for that space and `registered-any-peer` otherwise; a flow a registration decided
yet left unregistered was refused by `protocol-not-registered` when the registration lists
protocols without this one, and by `peer-not-listed` otherwise. The terms are the registry's;
a gateway on an older feed may have held others, and where the verdict contradicts them the
answer says so instead of guessing. Pure: the caller passes the terms and the feed's serials.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from vpnreg.core.policy import Rule, Verdict

__all__ = ["ImpliedRule", "RegistrationTerms", "SerialStanding", "implied_rule", "serial_standing"]


@dataclass(frozen=True)
class RegistrationTerms:
    """What of a registration the rule depends on, as the registry holds it."""

    #: True: every prefix of it in question lists peers; False: none does; None: some do.
    lists_peers: bool | None
    #: The VPN protocols it allows; empty: any.
    protocols: frozenset[str]


@dataclass(frozen=True)
class ImpliedRule:
    #: The rule, or None when the registry's terms cannot produce this verdict.
    rule: Rule | None
    #: Why this rule (or why none), in one sentence.
    basis: str


def implied_rule(
    *, verdict: str, protocol: str, registration_id: int | None, terms: RegistrationTerms | None
) -> ImpliedRule:
    """The rule a report row's verdict implies (see the module docstring)."""
    if verdict == Verdict.UNCONFIRMED.value:
        return ImpliedRule(Rule.UNCONFIRMED, "unconfirmed VPN evidence is passed, never blocked")
    if verdict == Verdict.NOT_DOMESTIC.value:
        return ImpliedRule(Rule.NO_DOMESTIC_ENDPOINT, "neither endpoint is domestic")
    if registration_id is None:
        if verdict == Verdict.UNREGISTERED.value:
            return ImpliedRule(Rule.NOT_REGISTERED, "no registration held the domestic address")
        return ImpliedRule(None, f"verdict {verdict} without a registration")
    if terms is None:
        return ImpliedRule(None, f"registration {registration_id} is unknown to the registry")
    allows = not terms.protocols or protocol in terms.protocols
    if verdict == Verdict.REGISTERED.value:
        if not allows:
            return ImpliedRule(
                None,
                f"the registry's terms do not allow {protocol}; the gateway held other terms",
            )
        if terms.lists_peers is None:
            return ImpliedRule(
                None,
                "registered-listed-peer or registered-any-peer: some of its prefixes list peers",
            )
        if terms.lists_peers:
            return ImpliedRule(Rule.REGISTERED_LISTED_PEER, "the peer is among its listed peers")
        return ImpliedRule(Rule.REGISTERED_ANY_PEER, "it lists no peers")
    if verdict == Verdict.UNREGISTERED.value:
        if not allows:
            listed = ", ".join(sorted(terms.protocols))
            return ImpliedRule(
                Rule.PROTOCOL_NOT_REGISTERED, f"{protocol} is not among its protocols ({listed})"
            )
        if terms.lists_peers is False:
            return ImpliedRule(
                None,
                "the registry's terms allow this flow (any peer, this protocol); "
                "the gateway held other terms",
            )
        return ImpliedRule(Rule.PEER_NOT_LISTED, "the peer is not among its listed peers")
    return ImpliedRule(None, f"verdict {verdict} is not one a registration decides")


@dataclass(frozen=True)
class SerialStanding:
    """How a gateway's applied serial stood against the registry's at a moment."""

    #: "current", "behind", "other-session", "no-feed" or "unknown".
    status: str
    #: The registry's serial at that moment, when known.
    registry_serial: int | None = None

    def describe(self) -> str:
        if self.status == "current":
            return "current"
        if self.status == "behind":
            return f"behind (registry at serial {self.registry_serial})"
        if self.status == "other-session":
            return "another feed session"
        if self.status == "no-feed":
            return "no feed applied"
        return "not known (older than the kept history)"


def serial_standing(
    *,
    applied_session: str | None,
    applied_serial: int | None,
    registry_session: str | None,
    serials: Sequence[tuple[int, dt.datetime]],
    at: dt.datetime,
) -> SerialStanding:
    """Whether `applied_serial` was the registry's current serial at `at`.

    `serials`: the registry's kept serials of `registry_session` with the time each was
    committed (from the kept deltas and the head). The serial current at `at` is the newest
    committed at or before it; when every kept one is later, it is not known.
    """
    if applied_serial is None or applied_session is None:
        return SerialStanding("no-feed")
    if registry_session is None or applied_session != registry_session:
        return SerialStanding("other-session")
    earlier = [serial for serial, created in serials if created <= at]
    if not earlier:
        return SerialStanding("unknown")
    current = max(earlier)
    if applied_serial >= current:
        return SerialStanding("current", current)
    return SerialStanding("behind", current)
