#!/usr/bin/env bash
# Installs the Debian packages the tests need (with --bench: and the benchmarks), only those
# that are missing.
# --no-install-recommends matters: without it wireguard-tools pulls in a kernel image.
set -euo pipefail
packages=(
    postgresql                                   # the registry tests' real database server
    nftables ipset iproute2 iputils-ping         # enforcement and exporter tests in namespaces
    wireguard-go wireguard-tools openvpn openssl # real VPN peers in the lab
    procps                                       # pgrep/kill in the lab fixture
    chromium                                     # the portal's end-to-end test (Playwright drives it)
    freeradius-utils                             # radclient: drives vpnreg radius in its tests
    nginx                                        # serves the static feed in its test (own config)
    systemd                                      # systemd-analyze verify on deploy/'s units (tests/deploy)
    openjdk-17-jre-headless                      # PySpark (local mode) in the analytics test
)
if [ "${1:-}" = "--bench" ]; then  # what only the benchmarks use (make bench)
    packages+=(
        tcpdump                                  # time to block, and the lab captures
        strongswan-charon strongswan-swanctl     # IKEv2 peers for the lab captures
        ocserv openconnect                       # an SSL VPN (AnyConnect protocol) for them
        openssh-server openssh-client            # an SSH session as ordinary traffic
        wrk                                      # the public lookup at saturation
        iperf3                                   # TCP at line rate through the lab (bench_line_rate)
    )
fi
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
    echo "system-deps: missing Debian packages ${missing[*]}; run 'make system-deps' as root" >&2
    exit 1
fi
echo "system-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
