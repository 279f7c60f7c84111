"""The exceptions syncd raises on purpose; each says what is wrong in words a user can act on."""

from __future__ import annotations


class SyncdError(Exception):
    """Base of every error syncd raises deliberately."""


class ConfigError(SyncdError):
    """The configuration is missing, malformed or inconsistent."""


class ValidationError(SyncdError):
    """Input (an import file, an activity) breaks a rule; nothing was changed."""


class RuleViolation(SyncdError):
    """A CRM rule forbids the operation (for example deleting a completed activity)."""


class ItemError(SyncdError):
    """One calendar item cannot be read or written; the other items go on.

    ``item`` names the item (href, item id or UID) and ``prop`` the property at fault, if known.
    """

    def __init__(self, item: str, prop: str | None, message: str) -> None:
        self.item = item
        self.prop = prop
        self.message = message
        where = f"{item}: {prop}" if prop else item
        super().__init__(f"{where}: {message}")


class RemoteError(SyncdError):
    """The remote side failed as a whole (unreachable, 5xx, timeout); the pass stops, nothing lost."""


class AuthError(RemoteError):
    """The remote side refused the credentials or the permissions (HTTP 401/403, EWS access denied)."""


class PreconditionFailed(SyncdError):
    """The remote item changed since syncd read it (HTTP 412, EWS ErrorIrresolvableConflict)."""

    def __init__(self, ref: str) -> None:
        self.ref = ref
        super().__init__(f"{ref}: changed on the server since it was read")


class AlreadyExists(SyncdError):
    """A create found an item with the same identity already there (HTTP 412 on If-None-Match)."""

    def __init__(self, ref: str) -> None:
        self.ref = ref
        super().__init__(f"{ref}: already exists on the server")


class NotFound(SyncdError):
    """The remote item is gone."""

    def __init__(self, ref: str) -> None:
        self.ref = ref
        super().__init__(f"{ref}: not found on the server")


class SafetyStop(SyncdError):
    """A guard stopped a binding's pass (for example a side suddenly lost most of its items)."""
