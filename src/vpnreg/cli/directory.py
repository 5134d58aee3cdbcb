"""`vpnreg users|orgs|isps|sector-bodies create`: the people and bodies of the registry, and
`vpnreg isps radius-client`: an ISP's RADIUS accounting client."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from vpnreg.cli.registry_context import open_registry
from vpnreg.cli.runtime import fail
from vpnreg.core.review import Role
from vpnreg.registry import services
from vpnreg.registry.models import ISP, Organisation, SectorBody

#: The actor recorded in the audit log for operator actions from the CLI.
CLI_ADMIN = "cli:admin"

users_app = typer.Typer(help="Logins and their roles.", no_args_is_help=True)
orgs_app = typer.Typer(help="Organisations that apply.", no_args_is_help=True)
isps_app = typer.Typer(help="Internet service providers.", no_args_is_help=True)
sector_app = typer.Typer(help="Sector bodies that endorse.", no_args_is_help=True)


@users_app.command("create")
def create_user(
    username: Annotated[str, typer.Option(help="Login name.")],
    role: Annotated[Role, typer.Option(help="The user's role.")],
    organisation: Annotated[str | None, typer.Option(help="Applicants: organisation name.")] = None,
    isp: Annotated[str | None, typer.Option(help="ISP users: the ISP's name.")] = None,
    sector_body: Annotated[str | None, typer.Option(help="Sector users: the body's name.")] = None,
) -> None:
    """Create a login. The password comes from VPNREG_NEW_PASSWORD, or is asked for."""
    password = os.environ.get("VPNREG_NEW_PASSWORD") or typer.prompt(
        "Password", hide_input=True, confirmation_prompt=True
    )
    with open_registry() as reg:
        user = services.create_user(
            reg.session,
            username=username,
            password=password,
            role=role,
            actor=CLI_ADMIN,
            now=reg.now(),
            organisation_id=reg.id_by_name(Organisation, organisation) if organisation else None,
            isp_id=reg.id_by_name(ISP, isp) if isp else None,
            sector_body_id=reg.id_by_name(SectorBody, sector_body) if sector_body else None,
        )
        typer.echo(f"user {user.username} created with role {user.role}")


@orgs_app.command("create")
def create_organisation(
    name: Annotated[str, typer.Option(help="The organisation's name.")],
    category: Annotated[str, typer.Option(help="software_house, call_centre, freelancer, ...")],
    registration_number: Annotated[str | None, typer.Option(help="Company number.")] = None,
    national_id: Annotated[
        str | None, typer.Option(help="Individuals: national ID (kept only as a keyed hash).")
    ] = None,
) -> None:
    """Register an organisation (or an individual freelancer)."""
    with open_registry() as reg:
        org = services.create_organisation(
            reg.session,
            name=name,
            category=category,
            actor=CLI_ADMIN,
            now=reg.now(),
            config=reg.config,
            registration_number=registration_number,
            national_id=national_id,
        )
        typer.echo(f"organisation {org.name} created (id {org.id})")


@isps_app.command("create")
def create_isp(name: Annotated[str, typer.Option(help="The ISP's name.")]) -> None:
    """Register an ISP."""
    with open_registry() as reg:
        isp = services.create_isp(reg.session, name=name, actor=CLI_ADMIN, now=reg.now())
        typer.echo(f"ISP {isp.name} created (id {isp.id})")


@isps_app.command("radius-client")
def radius_client(
    isp: Annotated[str, typer.Argument(metavar="ISP_NAME", help="The ISP's name.")],
    address: Annotated[
        str, typer.Option(metavar="ADDRESS", help="The client's (BNG's or AAA proxy's) IP address.")
    ],
    secret_file: Annotated[
        Path,
        typer.Option(
            metavar="FILE", help="File holding the shared secret (one line).", dir_okay=False
        ),
    ],
    subscriber_attribute: Annotated[
        str,
        typer.Option(metavar="NAME", help="The attribute holding the subscriber id, e.g. Class."),
    ] = "User-Name",
    ports_attribute: Annotated[
        str | None,
        typer.Option(
            metavar="NAME",
            help="The (vendor) attribute holding the CGNAT port block, e.g. VPNReg-Port-Range.",
        ),
    ] = None,
    dictionary: Annotated[
        list[Path] | None,
        typer.Option(
            metavar="FILE",
            help="An extra RADIUS dictionary the server is started with (repeatable).",
        ),
    ] = None,
) -> None:
    """Register the ISP's RADIUS accounting client, or update the one at that address."""
    secret = _read_secret(secret_file)
    _check_attributes([subscriber_attribute, ports_attribute], dictionary or [])
    with open_registry() as reg:
        client = services.set_radius_client(
            reg.session,
            isp_id=reg.id_by_name(ISP, isp),
            address=address,
            secret=secret,
            subscriber_attribute=subscriber_attribute,
            ports_attribute=ports_attribute,
            actor=CLI_ADMIN,
            now=reg.now(),
        )
        ports = f", ports from {client.ports_attribute}" if client.ports_attribute else ""
        typer.echo(
            f"RADIUS client {client.address} of {client.isp_name} set "
            f"(subscriber id from {client.subscriber_attribute}{ports})"
        )


def _read_secret(path: Path) -> str:
    """The shared secret: the file's first line, without its line end; missing or empty fails."""
    try:
        raw = path.read_bytes()
    except OSError as err:
        fail(f"secret file {path}: {err.strerror or err}")
    lines = raw.splitlines()
    if not lines or not lines[0].strip():
        fail(f"secret file {path} is empty: it must hold the shared secret on its first line")
    try:
        return lines[0].decode("ascii")
    except UnicodeDecodeError:
        fail(f"secret file {path}: the secret must be printable ASCII")


def _check_attributes(names: list[str | None], extra: list[Path]) -> None:
    """Each attribute named must be in the dictionary the server reads (shipped + extra)."""
    from vpnreg.radius.server import load_dictionary

    try:
        known = load_dictionary([str(p) for p in extra]).attributes
    except (OSError, ValueError) as err:
        fail(f"cannot read the RADIUS dictionary: {err}")
    for name in names:
        if name is not None and name not in known:
            fail(f"attribute {name!r} is not in the RADIUS dictionary (add one with --dictionary)")


@sector_app.command("create")
def create_sector_body(
    name: Annotated[str, typer.Option(help="The body's name.")],
    category: Annotated[list[str], typer.Option(help="A category it covers (repeatable).")],
) -> None:
    """Register a sector body and the categories it endorses."""
    with open_registry() as reg:
        body = services.create_sector_body(
            reg.session, name=name, categories=category, actor=CLI_ADMIN, now=reg.now()
        )
        typer.echo(f"sector body {body.name} created (id {body.id})")


def register(app: typer.Typer) -> None:
    app.add_typer(users_app, name="users")
    app.add_typer(orgs_app, name="orgs")
    app.add_typer(isps_app, name="isps")
    app.add_typer(sector_app, name="sector-bodies")
