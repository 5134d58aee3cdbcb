"""The installed `vpnreg` console script, as a user runs it (for subprocess tests)."""

from __future__ import annotations

import sys
from pathlib import Path

VPNREG = Path(sys.executable).with_name("vpnreg")
