"""The YAML file of `vpnreg apply`: the documented form is accepted, anything else is refused
in one line that names the file and the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.conftest import Run
from vpnreg.cli.application_file import ApplicationFile, load_application_file
from vpnreg.cli.runtime import EXIT_REFUSED, EXIT_USAGE, CliError
from vpnreg.registry.schemas import MAX_PREFIXES, PrefixIn

DOCUMENTED = """\
organisation: Acme Software
isp: Indus Fibre
prefixes:
  - prefix: 203.0.113.0/26
    peers: [198.51.100.0/24]      # optional: the remote VPN servers or offices it talks to
  - 2001:db8:10::/48
"""


def load(tmp_path: Path, text: str) -> ApplicationFile:
    path = tmp_path / "application.yaml"
    path.write_text(text, encoding="utf-8")
    return load_application_file(path)


def refusal(tmp_path: Path, text: str) -> CliError:
    with pytest.raises(CliError) as caught:
        load(tmp_path, text)
    return caught.value


def test_the_documented_form_is_read(tmp_path: Path) -> None:
    app = load(tmp_path, DOCUMENTED)
    assert (app.organisation, app.isp, app.submit) == ("Acme Software", "Indus Fibre", True)
    assert app.prefix_requests() == [
        ("203.0.113.0/26", ["198.51.100.0/24"]),
        ("2001:db8:10::/48", []),
    ]


def test_empty_peers_a_numeric_name_and_submit_false(tmp_path: Path) -> None:
    app = load(
        tmp_path,
        "organisation: 1984\nisp: Indus Fibre\nsubmit: false\n"
        "prefixes:\n  - prefix: 192.0.2.0/28\n    peers:\n  - {prefix: 192.0.2.16/28, peers: []}\n",
    )
    assert app.organisation == "1984" and app.submit is False
    assert app.prefix_requests() == [("192.0.2.0/28", []), ("192.0.2.16/28", [])]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (DOCUMENTED.replace("198.51.100.0/24]", "198.51.100.0/24, 42]"),
         "prefixes[0].peers[1]: must be a string (got 42)"),
        (DOCUMENTED + "  - 42\n",
         "prefixes[2]: must be a prefix or a mapping with prefix and peers (got 42)"),
        (DOCUMENTED + "  - {peers: [198.51.100.0/24]}\n", "prefixes[2].prefix: required"),
        (DOCUMENTED + "  - {prefix: 192.0.2.0/24, peer: [198.51.100.0/24]}\n",
         "prefixes[2].peer: unknown key"),
        (DOCUMENTED.replace("    peers: [198.51.100.0/24]", "    peers: 198.51.100.0/24"),
         "prefixes[0].peers: must be a list (got '198.51.100.0/24')"),
        (DOCUMENTED.replace("isp: Indus Fibre\n", ""), "isp: required"),
        (DOCUMENTED.replace("Acme Software", "''"), "organisation: must not be empty (got '')"),
        (DOCUMENTED.replace("prefixes:\n", "prefixes: 192.0.2.0/24\nold_prefixes:\n"),
         "prefixes: must be a list (got '192.0.2.0/24'); old_prefixes: unknown key"),
        (DOCUMENTED + "submit: maybe\n", "submit: must be true or false (got 'maybe')"),
    ],
    ids=["peer-not-text", "item-not-prefix", "no-prefix", "misspelt-key", "peers-not-list",
         "no-isp", "empty-name", "two-problems", "bad-submit"],
)  # fmt: skip
def test_refusals_name_the_file_and_the_field(tmp_path: Path, text: str, message: str) -> None:
    err = refusal(tmp_path, text)
    assert err.code == EXIT_REFUSED
    assert str(err) == f"{tmp_path / 'application.yaml'}: {message}"


def test_the_api_limits_apply_to_the_file(tmp_path: Path) -> None:
    items = [f"  - 10.{i // 256}.{i % 256}.0/24\n" for i in range(MAX_PREFIXES + 1)]
    head = "organisation: A\nisp: B\nprefixes:\n"
    err = refusal(tmp_path, head + "".join(items))
    assert str(err).endswith(f"prefixes: must have at most {MAX_PREFIXES} items")
    assert len(load(tmp_path, head + "".join(items[1:])).prefixes) == MAX_PREFIXES
    long = "2001:db8:" + "0:" * 30 + ":/48"
    assert str(refusal(tmp_path, f"organisation: A\nisp: B\nprefixes: ['{long}']\n")).endswith(
        "prefixes[0].prefix: must be at most 64 characters"
    )
    peers = ", ".join(f"198.51.100.{i}/32" for i in range(65))
    text = f"organisation: A\nisp: B\nprefixes:\n  - {{prefix: 192.0.2.0/24, peers: [{peers}]}}\n"
    assert str(refusal(tmp_path, text)).endswith("prefixes[0].peers: must have at most 64 items")


def test_the_file_uses_the_api_prefix_model() -> None:
    from vpnreg.web.schemas import ApplicationCreate

    assert ApplicationCreate.model_fields["prefixes"].annotation == list[PrefixIn]


def test_not_yaml_not_a_mapping_and_unreadable(tmp_path: Path) -> None:
    err = refusal(tmp_path, "organisation: [unclosed\n")
    assert err.code == EXIT_REFUSED and "not valid YAML" in str(err) and "\n" not in str(err)
    err = refusal(tmp_path, "- just\n- a list\n")
    assert str(err).endswith(
        "expected a mapping with organisation, isp and prefixes (or subscriber_id)"
    )
    with pytest.raises(CliError) as caught:
        load_application_file(tmp_path / "missing.yaml")
    assert caught.value.code == EXIT_USAGE and "cannot read" in str(caught.value)


def test_the_console_script_refuses_in_one_line_with_exit_1(run: Run, tmp_path: Path) -> None:
    path = tmp_path / "application.yaml"
    path.write_text(DOCUMENTED.replace("198.51.100.0/24]", "198.51.100.0/24, [x]]"))
    result = run("apply", str(path), "--actor", "alice")
    assert result.code == 1
    assert result.err_lines == [f"vpnreg: {path}: prefixes[0].peers[1]: must be a string"]


def _raw_refusal(tmp_path: Path, data: bytes) -> CliError:
    path = tmp_path / "application.yaml"
    path.write_bytes(data)
    with pytest.raises(CliError) as caught:
        load_application_file(path)
    return caught.value


LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{b}: &{b} [{', '.join([f'*{a}'] * 9)}]\n" for a, b in zip("abcdefg", "bcdefgh", strict=True)
)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        pytest.param(
            (LAUGHS + "organisation: *h\nisp: *h\nprefixes: *h\n").encode(),
            "not valid YAML (YAML aliases (*a) are not accepted (line 2))",
            id="billion-laughs",
        ),
        pytest.param(
            DOCUMENTED.encode() + b"# " + b"x" * 300_000 + b"\n",
            "larger than 262144 bytes; an application file is far smaller",
            id="oversized",
        ),
        pytest.param(
            DOCUMENTED.encode("utf-16"),
            "not UTF-8 text (UTF-16 or binary?); save it as UTF-8",
            id="utf-16",
        ),
        pytest.param(
            DOCUMENTED.replace(
                "  - 2001:db8:10::/48\n", "  - [" + "[" * 50 + "]" * 50 + "]\n"
            ).encode(),
            "prefixes[1]: must be a prefix or a mapping with prefix and peers (got list)",
            id="deep-list-named-by-type",
        ),
    ],
)
def test_hostile_files_are_refused_cheaply_in_one_short_line(
    tmp_path: Path, data: bytes, message: str
) -> None:
    err = _raw_refusal(tmp_path, data)
    assert err.code == EXIT_REFUSED
    assert str(err) == f"{tmp_path / 'application.yaml'}: {message}"


def test_a_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "application.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + DOCUMENTED.encode())
    assert load_application_file(path).organisation == "Acme Software"


def test_the_longest_file_allowed_is_parsed_and_refused_by_its_limits(tmp_path: Path) -> None:
    # 250 kB of peers in one flow list: parsed by libyaml, refused by the 64-peer limit
    peers = ", ".join(["1"] * 85_000)
    text = f"organisation: A\nisp: B\nprefixes:\n  - {{prefix: 192.0.2.0/24, peers: [{peers}]}}\n"
    assert len(text) < 256 * 1024
    assert str(refusal(tmp_path, text)).endswith("prefixes[0].peers: must have at most 64 items")
