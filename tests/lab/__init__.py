"""Integration tests in a network-namespace lab with real VPN software (marked lab)."""
