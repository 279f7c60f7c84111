"""``python -m bench.modules_probe CONFIG``: runs ``syncd --config CONFIG sync`` in this process and
prints, as JSON, which connector libraries it had imported by the end."""

from __future__ import annotations

import json
import sys

from syncd.cli import main

WATCHED = ("exchangelib", "caldav", "radicale", "icalendar", "recurring_ical_events")

if __name__ == "__main__":
    try:
        main(["--config", sys.argv[1], "sync"], prog_name="syncd")
    except SystemExit as exc:
        code = exc.code
    print(json.dumps({"exit": code, "loaded": [m for m in WATCHED if m in sys.modules]}))
