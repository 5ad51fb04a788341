"""End-to-end scenarios across the resident portal, the staff window and the national network.

They run on the portal's real test server (tests/portal/live.py): both demo
municipalities, the national side, the relay run between the steps as `jumin serve`
runs it in the background, and Debian's Chromium.
"""

from __future__ import annotations

import os

# Certificates are signed with keys encrypted under this; set before certificate code reads it.
os.environ.setdefault("JUMIN_CA_PASSPHRASE", "test-ca-passphrase")

from tests.portal.live import portal_server  # noqa: F401 (fixtures)
