"""One router per noun of the REST API; ``ROUTERS`` lists them in the order the app mounts them."""

from __future__ import annotations
