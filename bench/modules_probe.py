"""``python -m bench.modules_probe CONFIG``: runs ``syncd --config CONFIG sync`` in this process and
prints, as JSON, which of the watched libraries it had imported by the end. Run with ``-X importtime``
(as :mod:`bench.startup` does), its standard error also says what each import cost."""

from __future__ import annotations

import json
import sys

from syncd.cli import main

#: Libraries a CalDAV-only pass may need (icalendar, for the items that changed) and ones it must not
#: load: the other connectors, Radicale (the test server), rich (structlog's tracebacks), and the
#: caldav library with its HTTP stack (niquests, urllib3) and YAML config loader: syncd's CalDAV
#: transport is http.client.
WATCHED = ("exchangelib", "msal", "syncd.connectors.exchange", "syncd.connectors.graph", "caldav", "niquests",
           "urllib3", "requests", "radicale", "icalendar", "recurring_ical_events", "rich", "yaml")

if __name__ == "__main__":
    try:
        main(["--config", sys.argv[1], "sync"], prog_name="syncd")
    except SystemExit as exc:
        code = exc.code
    loaded = [m for m in WATCHED if sys.modules.get(m) is not None]
    print(json.dumps({"exit": code, "loaded": loaded}))
