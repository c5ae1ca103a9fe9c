"""``signal-gateway serve`` with one uvicorn option changed, to measure a proposal before making it.

``python -m bench.gateway_variant --ws-deflate serve --broker ... --port ...`` runs the real CLI
(``signal_gateway.cli.main``) with uvicorn's ``ws_per_message_deflate`` forced on: everything
else (settings, app, hub, sinks, uvloop) is exactly what ``serve`` runs.
"""

from __future__ import annotations

import sys
from typing import Any

import uvicorn

from signal_gateway import cli


def main(argv: list[str]) -> int:
    """Strip our flags, patch uvicorn.Config, hand the rest to the real CLI."""
    deflate = "--ws-deflate" in argv
    rest = [a for a in argv if a != "--ws-deflate"]
    if deflate:
        original = uvicorn.Config.__init__

        def patched(self: uvicorn.Config, *args: Any, **kwargs: Any) -> None:
            kwargs["ws_per_message_deflate"] = True
            original(self, *args, **kwargs)

        uvicorn.Config.__init__ = patched  # type: ignore[method-assign]
    return cli.main(rest)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
