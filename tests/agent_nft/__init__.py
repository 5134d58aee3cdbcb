"""Unit tests of the nftables back end through the fake runner."""
