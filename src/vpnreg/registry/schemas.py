"""Request shapes shared by the registry's two front doors, the JSON API and the CLI.

Pydantic only: no SQLAlchemy or FastAPI, so the CLI can check a file against the same shape the
API documents without loading the web app. What a prefix means is checked by the services.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

#: The most prefixes one application may ask for.
MAX_PREFIXES = 256


class PrefixIn(BaseModel):
    """One prefix to register and the peers it is limited to (empty: any peer)."""

    model_config = ConfigDict(extra="forbid")

    prefix: str = Field(max_length=64, examples=["203.0.113.0/24"])
    peers: list[Annotated[str, Field(max_length=64)]] = Field(default_factory=list, max_length=64)
