"""A CalDAV binding's first request of a one-shot ``syncd sync``, sent while the process starts.

A no-change ``syncd sync`` is start-up (imports, the store, the app: about 0.6 s of CPU) and then one
sync-collection REPORT, which a server answers in its own time (0.5-0.8 s for Radicale at 5,000
events). :func:`send_early` sends that REPORT from a daemon thread as soon as the config is loaded,
before the heavy imports, guessing the saved sync token from the store without SQLAlchemy
(:mod:`syncd.store.peek`). The pass then takes the reply instead of asking itself, but only if the
request it is about to send is byte for byte the one that was sent: same URL, same body (so the same
sync token), same headers, same credentials and auth scheme (:meth:`DavTransport.signature`).
Otherwise the reply is dropped and the pass sends its own request, as it would have.

Why an early reply is as good as the pass's own: a sync-collection REPORT answers "what changed since
token T, up to the moment the server ran it", with the token of that moment. Had the pass started
then, it would have got exactly this answer; everything changed later is after the new token, which
the pass saves and the next pass continues from, so nothing is missed. If the binding's saved state
moved between the guess and the pass (another process ran a pass), the pass's body names another
token, the signatures differ and the reply is not used. Nothing but this one read is sent early:
never a write, never a request whose answer depends on more than the request.

An early request's failure (a wrong password, a server that is down, a state that cannot be read) is
never shown: the pass makes the same request and meets, and reports, the same failure itself. The
thread is a daemon thread that closes its connection when its answer is in: a reply no pass takes
(the binding's pass was skipped or failed before its first request) holds nothing up, not even the
process's exit.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from syncd.config import Binding, CalDavRemote
    from syncd.connectors.caldav_transport import HttpReply

#: Bindings sent early at most: start-up hides about one request; a one-shot sync of hundreds of
#: bindings must not open hundreds of connections and ask the servers for as many reports at once.
MOST_EARLY = 4
#: The saved state's format this module reads (``syncd.connectors.caldav.STATE_VERSION``).
_STATE_VERSION = 1
_HEADERS = {"Depth": "0"}


class EarlyReply:
    """One request sent from a daemon thread, handed to the first request of one transport
    (:class:`~syncd.connectors.caldav_transport.DavTransport`'s ``early``), which uses it once, if
    it is the same request."""

    def __init__(self, remote: CalDavRemote, state: str) -> None:
        self._done = threading.Event()
        self._signature: tuple[object, ...] | None = None
        self._reply: HttpReply | None = None
        thread = threading.Thread(target=self._send, args=(remote, state), name="syncd-early-request", daemon=True)
        thread.start()

    def _send(self, remote: CalDavRemote, state: str) -> None:
        try:
            # Imported here: this thread loads the transport while the main thread loads the rest.
            from syncd.connectors import caldav_protocol as dav
            from syncd.connectors.caldav_transport import DavTransport

            url = remote.url if remote.url.endswith("/") else remote.url + "/"
            token, scheme = _saved_token(state, dav.canonical_path(url, url))
            if token is None:
                return
            body = dav.sync_collection_body(token)
            # The secret read as the connector reads it (``reveal_secret``: a password from a file or
            # the environment is read now and handed to the log scrubber), without its module, which
            # loads logging first; the transport built as CalDavConnector builds it.
            password = remote.password.get_secret_value() if remote.password is not None else None
            transport = DavTransport(
                remote.url, username=remote.username, password=password,
                auth=remote.auth if remote.auth != "auto" else None, verify_tls=remote.verify_tls,
                timeout=remote.timeout, max_backoff=0.0,
            )
            try:
                if scheme:
                    transport.use_scheme(scheme)
                signature = transport.signature("REPORT", url, body, _HEADERS, xml=False)
                reply = transport.request("REPORT", url, body, _HEADERS, xml=False)
            finally:
                transport.close()
            if reply.status == 207:
                self._signature, self._reply = signature, reply
        except Exception:  # noqa: BLE001 - never shown: the pass sends this request itself and reports what it meets
            pass
        finally:
            self._done.set()

    def answer(self, signature: tuple[object, ...], wait: float) -> HttpReply | None:
        """The reply, if it answered the request of this ``signature``; waits up to ``wait`` seconds
        for a request still under way. Given once: a second call finds nothing."""
        if not self._done.wait(wait):
            return None
        reply, sent = self._reply, self._signature
        self._reply = self._signature = None
        return reply if reply is not None and sent == signature else None


class EarlyReplies:
    """The early requests of one ``syncd sync``, by binding name; each is handed over once."""

    def __init__(self, replies: Mapping[str, EarlyReply]) -> None:
        self._replies = dict(replies)

    def take(self, binding: str) -> EarlyReply | None:
        return self._replies.pop(binding, None)


def send_early(bindings: Iterable[Binding], states: Mapping[str, str]) -> EarlyReplies:
    """Sends the first request of the CalDAV bindings among ``bindings`` (in their order, at most
    :data:`MOST_EARLY`) whose saved ``states`` hold a sync token: the events collection's
    sync-collection REPORT. A calendar named by display name is left out (its first requests look
    it up), as is every other remote type."""
    replies: dict[str, EarlyReply] = {}
    for binding in bindings:
        if len(replies) == MOST_EARLY:
            break
        remote = binding.remote
        state = states.get(binding.name)
        if remote.type != "caldav" or state is None or remote.calendar or remote.tasks_calendar:
            continue
        replies[binding.name] = EarlyReply(remote, state)
    return EarlyReplies(replies)


def _saved_token(state: str, path: str) -> tuple[str | None, str | None]:
    """The sync token saved for the collection at ``path`` and the auth scheme learnt, as
    ``syncd.connectors.caldav`` reads its state (``_load_state``); ``(None, None)`` when the pass
    would not start with a sync-collection REPORT from a token."""
    try:
        data = json.loads(state)
        if data.get("version") != _STATE_VERSION:
            return None, None
        entry = data["collections"][path]
        token = entry.get("token") if entry.get("sync") else None
        scheme = data.get("auth")
    except (ValueError, TypeError, KeyError, AttributeError):
        return None, None
    return (token if isinstance(token, str) and token else None), (scheme if isinstance(scheme, str) else None)
