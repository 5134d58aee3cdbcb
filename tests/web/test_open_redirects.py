"""Open redirects through `next=`: whatever target a link carries to the sign-in page, the browser
lands on this site after signing in.

The sign-in page takes `next` in its query and carries it in a hidden field; POST /login redirects
to it. A page needing sign-in sends a browser to /login?next=<its own path>. Every variant below
must end with a Location that is a path on this site: it starts with exactly one `/`, and read
as a browser reads it (tabs and line breaks dropped, backslashes as slashes) it names no host.
"""

from __future__ import annotations

import html
import re
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient

from tests.api.harness import CSRF_FIELD, Api
from tests.registry.conftest import PASSWORD

VARIANTS = [
    "//evil.example",
    "//evil.example/path",
    "https://evil.example",
    "http://evil.example/",
    "HTTPS://EVIL.EXAMPLE",
    "/\\evil.example",
    "\\\\evil",
    "\\/evil.example",
    "/\\/evil.example",
    "%2F%2Fevil.example",
    "/%2F/evil.example",
    "http:evil",
    "https:/evil.example",
    "javascript:alert(1)",
    "JaVaScRiPt:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "/%09/evil.example",
    "/\t/evil.example",
    "/\n/evil.example",
    "/\r\nLocation: https://evil.example",
    "////evil",
    "///evil.example",
    "https://demo@evil.example",
    "//user:pass@evil.example",
    "/@evil.example",
    "\uff0f\uff0fevil.example",
    "/\u2215evil.example",
    "/\uff3cevil.example",
    " //evil.example",
    "evil.example",
    "/%5Cevil.example",
    "/.//evil.example",
]


def _stays_on_site(location: str) -> bool:
    if not location.startswith("/") or location.startswith(("//", "/\\")):
        return False
    # As a browser reads a Location: it drops tabs and line breaks and treats `\` as `/`.
    as_read = re.sub(r"[\t\r\n]", "", location).replace("\\", "/")
    parts = urlsplit(as_read)
    return not parts.scheme and not parts.netloc and not as_read.startswith("//")


def _sign_in_via(client: TestClient, target: str) -> str:
    """Open /login?next=target, post the form as the page carries it; the Location answered."""
    page = client.get("/login", params={"next": target})
    assert page.status_code == 200
    csrf = CSRF_FIELD.search(page.text)
    carried = re.search(r'<input type="hidden" name="next" value="([^"]*)">', page.text)
    assert csrf is not None and carried is not None
    # The target is escaped into the page (no markup of its own) and carried unchanged.
    assert html.unescape(carried.group(1)) == target
    response = client.post(
        "/login",
        data={
            "username": "ali",
            "password": PASSWORD,
            "csrf_token": csrf.group(1),
            "next": html.unescape(carried.group(1)),
        },
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    return str(response.headers["location"])


def test_the_variants_are_at_least_twenty() -> None:
    assert len(set(VARIANTS)) == len(VARIANTS) >= 20


@pytest.mark.parametrize("target", VARIANTS, ids=[repr(v) for v in VARIANTS])
def test_sign_in_never_redirects_off_site(api: Api, target: str) -> None:
    location = _sign_in_via(api.new_client(), target)
    assert _stays_on_site(location), location
    assert "evil" not in urlsplit(location.replace("\\", "/")).netloc


def test_a_path_on_this_site_is_kept(api: Api) -> None:
    assert _sign_in_via(api.new_client(), "/applications?state=draft") == (
        "/applications?state=draft"
    )


def test_a_page_needing_sign_in_sends_the_browser_back_to_itself_only(api: Api) -> None:
    client = api.new_client()
    page = client.get(
        "/applications",
        params={"back": "//evil.example"},
        headers={"Accept": "text/html"},
        follow_redirects=False,
    )
    assert page.status_code == 303
    location = page.headers["location"]
    assert location.startswith("/login?next=")
    target = client.get(location).text
    carried = re.search(r'name="next" value="([^"]*)"', target)
    assert carried is not None
    landed = _sign_in_via(api.new_client(), html.unescape(carried.group(1)))
    assert landed.startswith("/applications?")
    assert _stays_on_site(landed)


def test_the_checker_itself_refuses_off_site_locations() -> None:
    # The predicate above is what every case rests on: it must tell the two apart.
    for bad in ("//evil", "/\\evil", "https://evil", "/\t/evil", "evil"):
        assert not _stays_on_site(bad), bad
    assert _stays_on_site("/applications/1?done=submitted")
