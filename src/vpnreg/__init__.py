"""vpnreg: register VPN endpoints through one window; enforce the signed allowlist at gateways."""

__version__ = "0.1.0"
