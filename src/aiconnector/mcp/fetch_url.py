"""Moved to ``aiconnector.net.safe_fetch`` (the authorization server fetches Client ID
Metadata Documents with it too, and ``core`` must not import ``mcp``).

This name stays an alias of that very module object, not a copy of its names, so existing
imports keep working and a test that patches ``fetch_url.SCHEMES`` patches the real one."""

import sys

from aiconnector.net import safe_fetch

sys.modules[__name__] = safe_fetch
