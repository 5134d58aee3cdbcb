#!/usr/bin/env bash
# Installs the Debian packages the tests need, only those that are missing.
# --no-install-recommends matters: without it wireguard-tools pulls in a kernel image.
set -euo pipefail
packages=(
    postgresql                                   # the registry tests' real database server
    nftables ipset iproute2 iputils-ping         # enforcement and exporter tests in namespaces
    wireguard-go wireguard-tools openvpn openssl # real VPN peers in the lab
    procps                                       # pgrep/kill in the lab fixture
    chromium                                     # the portal's end-to-end test (Playwright drives it)
)
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
