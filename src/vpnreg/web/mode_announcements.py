"""The public announcement of every enforcement mode change (ADR 0012), as JSON.

`/transparency/mode-changes` lists each change of the feed's signed mode, newest first: the
protocol (or every protocol), from and to which mode, its start, its planned end (a trial) and
actual end, its reason and the acting role, never a person's name. Public: no token, no login.
The portal's /mode-changes page (vpnreg.web.portal.mode_changes) shows the same list.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from vpnreg.registry.services.mode_changes import list_changes
from vpnreg.web.policy import EVERYONE, allow
from vpnreg.web.reads import ReadDb

__all__ = ["ModeChangeOut", "router"]

#: Most changes one answer lists.
MAX_LISTED = 500

router = APIRouter(prefix="/transparency", tags=["transparency"], dependencies=[allow(EVERYONE)])


class ModeChangeOut(BaseModel):
    id: int
    protocol: str | None = Field(description="The VPN protocol; null: every protocol")
    scope: str = Field(description="The protocol, or `all protocols`")
    from_: str = Field(alias="from", description="`enforce` or `dry-run`, before")
    to: str = Field(description="`enforce` or `dry-run`, after")
    reason: str
    actor_role: str = Field(description="`regulator`, or `system` for a trial's revert")
    start: str = Field(description="When it was signed (RFC 3339, UTC)")
    planned_end: str | None = Field(description="A trial's announced end; null: until changed")
    ended_at: str | None = Field(description="When it stopped applying; null: in force")
    ended_by: str | None = Field(description="`planned end` or `replaced by change N`")
    serial: int = Field(description="The feed serial that carried it")
    trial: bool


@router.get(
    "/mode-changes",
    summary="Every change of the enforcement mode, newest first (public)",
    response_model=list[ModeChangeOut],
    response_model_by_alias=True,
)
def mode_changes(
    db: ReadDb, limit: Annotated[int, Query(ge=1, le=MAX_LISTED)] = MAX_LISTED
) -> list[ModeChangeOut]:
    """Each change with its start, end and reason, as announced (also on the page /mode-changes)."""
    return [ModeChangeOut.model_validate(c.to_json()) for c in list_changes(db, limit=limit)]
