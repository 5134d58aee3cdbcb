"""Domain errors of the registry services, each with a one-line message.

The web layer turns them into problem+json responses (API) or error pages (portal) and the CLI
into exit code 1; `code` is a stable machine-readable name for each kind and `status` the one
HTTP status every web answer uses for it.
"""

from __future__ import annotations

from dataclasses import dataclass


class RegistryError(Exception):
    """Base of every error a registry service raises on purpose."""

    code = "registry_error"
    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message

    def field_errors(self) -> list[FieldError]:
        """The problems to show beside a form: one, not tied to a field (ValidationFailed: each
        field's own)."""
        return [FieldError("", self.code, self.message)]


class NotFound(RegistryError):
    """The named object does not exist."""

    code = "not_found"
    status = 404

    def __init__(self, kind: str, key: object) -> None:
        super().__init__(f"{kind} {key!s} not found")
        self.kind = kind
        self.key = key


@dataclass(frozen=True)
class FieldError:
    """One problem with one input field: `field` like "prefixes[1]" or "line 12: prefix"."""

    field: str
    code: str
    message: str
    value: object = None


class ValidationFailed(RegistryError):
    """The input has one or more problems; all of them are in `errors`."""

    code = "validation_failed"
    status = 422

    def __init__(self, errors: list[FieldError]) -> None:
        if not errors:
            raise ValueError("ValidationFailed needs at least one FieldError")
        first = errors[0]
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        super().__init__(f"{first.field}: {first.message}{more}")
        self.errors = list(errors)

    def field_errors(self) -> list[FieldError]:
        return list(self.errors)


class StateConflict(RegistryError):
    """The action is not possible in the object's current state."""

    code = "state_conflict"
    status = 409


class StaleVersion(RegistryError):
    """The caller acted on an older version of the object than the one stored."""

    code = "stale_version"
    status = 412

    def __init__(self, expected: int, actual: int) -> None:
        super().__init__(
            f"the application changed meanwhile: you had version {expected}, "
            f"it is now version {actual}"
        )
        self.expected = expected
        self.actual = actual


class OverlapConflict(RegistryError):
    """The address space is already claimed by another registration over overlapping dates."""

    code = "overlap_conflict"
    status = 409

    def __init__(
        self, prefix: str, tracking_number: str, other_prefix: str, message: str | None = None
    ) -> None:
        super().__init__(
            message
            or f"{prefix} overlaps {other_prefix} of registration {tracking_number} "
            "over overlapping validity"
        )
        self.prefix = prefix
        self.tracking_number = tracking_number
        self.other_prefix = other_prefix


class Forbidden(RegistryError):
    """The actor may not do this."""

    code = "forbidden"
    status = 403


class Busy(RegistryError):
    """The database stayed locked by other writers for too long; nothing was changed."""

    code = "busy"
    status = 503

    def __init__(self) -> None:
        super().__init__("the registry is busy; nothing was changed, try again in a moment")


class Unavailable(Busy):
    """The database could not be reached: restarting, or the connection was lost mid-request.

    Answered like Busy (503 with Retry-After). A write whose connection broke may or may not
    have been committed; clients retry it the way they would after a timeout. `reason` is the
    driver's own line (host, socket, what failed): for operators (the CLI prints it), never
    for web clients."""

    code = "unavailable"

    def __init__(self, reason: str = "") -> None:
        RegistryError.__init__(
            self, "the registry's database is unavailable for a moment; try again shortly"
        )
        self.reason = " ".join(reason.split())[:300]
