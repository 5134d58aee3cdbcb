"""Classification accuracy on the nDPI corpus, at file level, against plain nDPI VPN labels."""

from __future__ import annotations

import csv
import statistics
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.report import write_section
from vpnreg.cli.classify import verdict_rows

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus" / "ndpi"
GROUPS = ("vpn", "tunnel-not-vpn", "hard-negative", "common")

#: Manifest labels the rules dispute, with the evidence (counted as labelled all the same).
DISPUTED = {
    "gre.pcapng": "GRE v1 with protocol 0x880b carrying PPP: PPTP's data channel (RFC 2637)",
}


@dataclass(frozen=True)
class FileResult:
    file: str
    group: str
    is_vpn: bool
    ours: bool
    naive: bool
    reason: str


def _reason(rows: list[dict[str, Any]], detected: bool) -> str:
    if detected:
        vpn = sorted({f"{r['vpn_protocol']} ({r['basis']})" for r in rows if r["vpn"]})
        return "; ".join(vpn)
    labelled = sorted({f"{r['application']}: {r['basis']}" for r in rows if r["category"] == "VPN"})
    return "; ".join(labelled) or "no flow carries a VPN label or VPN behaviour"


def _ratio(num: int, den: int) -> str:
    return f"{num / den:.2f}" if den else "n/a"


def main() -> None:
    with (CORPUS / "MANIFEST.tsv").open(newline="") as fh:
        manifest = list(csv.DictReader(fh, delimiter="\t"))
    results: list[FileResult] = []
    packets: list[int] = []
    millis: list[int] = []
    flows = 0
    started = time.perf_counter()
    for entry in manifest:
        rows = list(verdict_rows(CORPUS / entry["file"], label=entry["file"]))
        flows += len(rows)
        ours = any(r["vpn"] for r in rows)
        for r in rows:
            if r["vpn"]:
                packets.append(r["packets_to_verdict"])
                millis.append(r["ms_to_verdict"])
        results.append(
            FileResult(
                file=entry["file"],
                group=entry["group"],
                is_vpn=entry["is_vpn"] == "yes",
                ours=ours,
                naive=any(r["category"] == "VPN" for r in rows),
                reason=_reason(rows, ours),
            )
        )
    elapsed = time.perf_counter() - started

    lines = [
        f"{len(results)} captures, {flows} flows classified in {elapsed:.1f} s "
        f"({flows / elapsed:.0f} flows/s, NFStream with one meter, including its start-up per "
        "file). A file counts as detected when at least one of its flows is a VPN flow. "
        'Compared in the same run with the plain nDPI rule "any flow whose nDPI category is '
        'VPN".',
        "",
        "| group | files | detected (ours) | detected (nDPI category) |",
        "| --- | --- | --- | --- |",
    ]
    by_group: dict[str, list[FileResult]] = defaultdict(list)
    for r in results:
        by_group[r.group].append(r)
    for group in GROUPS:
        rs = by_group[group]
        lines.append(
            f"| {group} | {len(rs)} | {sum(r.ours for r in rs)} | {sum(r.naive for r in rs)} |"
        )

    def scores(pick: str, relabel: bool) -> tuple[str, str, int, int]:
        tp = fp = fn = 0
        for r in results:
            truth = r.is_vpn or (relabel and r.file in DISPUTED)
            said = getattr(r, pick)
            tp += said and truth
            fp += said and not truth
            fn += (not said) and truth
        return _ratio(tp, tp + fp), _ratio(tp, tp + fn), fp, fn

    lines += ["", "| rule set | labels | precision | recall | false positives | misses |"]
    lines += ["| --- | --- | --- | --- | --- | --- |"]
    for pick, name in (("ours", "vpnreg rules"), ("naive", "nDPI category VPN")):
        for relabel, labels in ((False, "as in MANIFEST"), (True, "gre.pcapng as PPTP")):
            p, rc, fp, fn = scores(pick, relabel)
            lines.append(f"| {name} | {labels} | {p} | {rc} | {fp} | {fn} |")
    hard_fp = [r for r in by_group["hard-negative"] if r.ours]
    lines += ["", f"False positives among the hard negatives: {len(hard_fp)}."]

    lines += ["", "### False positives (vpnreg rules, as labelled)", ""]
    fps = [r for r in results if r.ours and not r.is_vpn]
    for r in fps:
        note = f" Disputed label: {DISPUTED[r.file]}." if r.file in DISPUTED else ""
        lines.append(f"- `{r.file}` ({r.group}): {r.reason}.{note}")
    if not fps:
        lines.append("- none")
    lines += ["", "### Misses (vpnreg rules)", ""]
    misses = [r for r in results if r.is_vpn and not r.ours]
    for r in misses:
        lines.append(f"- `{r.file}`: {r.reason}.")
    if not misses:
        lines.append("- none")
    lines += ["", "### False positives of the plain nDPI rule", ""]
    for r in results:
        if r.naive and not r.is_vpn:
            lines.append(f"- `{r.file}` ({r.group}): {r.reason}")

    lines += [
        "",
        "### OpenVPN static-key mode (reported apart)",
        "",
        "OpenVPN's deprecated `--secret` static-key mode sends no opcode, session id or "
        "handshake: every packet is ciphertext plus HMAC. Neither nDPI nor these rules can "
        "identify it from behaviour, and it is not counted in recall. The corpus holds no such "
        "capture (every OpenVPN capture in it carries the TLS-mode opcodes).",
        "",
        "### Time to verdict (VPN flows)",
        "",
    ]
    if packets:
        q = statistics.quantiles(packets, n=20) if len(packets) > 1 else [packets[0]] * 19
        qm = statistics.quantiles(millis, n=20) if len(millis) > 1 else [millis[0]] * 19
        lines += [
            f"{len(packets)} VPN flows. Packets from a flow's first packet to its verdict: "
            f"median {statistics.median(packets):.0f}, p95 {q[18]:.0f}, max {max(packets)}. "
            f"Capture milliseconds: median {statistics.median(millis):.0f}, p95 {qm[18]:.0f}, "
            f"max {max(millis)} (long gaps are the captures' own idle times between packets).",
        ]
    body = "\n".join(lines)
    print(body)
    write_section("accuracy", "Classification accuracy on the nDPI corpus", body)


if __name__ == "__main__":
    main()
