"""RADIUS accounting (RFC 2866): ISPs' BNGs report subscriber bindings to `vpnreg radius`.

`server` receives and answers the packets (pyrad encodes and decodes them); what an
Accounting-Request means is the pure core's (vpnreg.core.radius_accounting); storing goes
through vpnreg.registry.services.bindings.report_events, the one path for bindings.
`dictionary` (with `dictionary.vpnreg`, the vendor attributes) is the shipped RADIUS dictionary.
"""

from __future__ import annotations

from pathlib import Path

#: The RADIUS dictionary the server reads attributes with.
DICTIONARY = Path(__file__).with_name("dictionary")
#: Its vendor part alone (for a FreeRADIUS proxy or radclient to $INCLUDE).
VENDOR_DICTIONARY = Path(__file__).with_name("dictionary.vpnreg")
