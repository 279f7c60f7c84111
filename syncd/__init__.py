"""syncd: keeps CRM activities and people's calendars (CalDAV, Exchange) in step."""

__version__ = "0.1.0"
