"""A CalDAV binding's first requests of a one-shot ``syncd sync``, sent while the process starts.

A ``syncd sync`` is start-up (imports, the store, the app: about 0.6 s of CPU) and then the pass's
requests, the first of which a server answers in its own time: a no-change pass's sync-collection
REPORT (0.5-0.8 s for Radicale at 5,000 events), a first pull's listing of the whole calendar with
every item's data (2.3 s). :func:`send_early` sends those requests from a daemon thread as soon as the
config is loaded, before the heavy imports, guessing from the store without SQLAlchemy
(:mod:`syncd.store.peek`) what the pass will ask:

- a binding with a saved sync token: the sync-collection REPORT from that token;
- the binding the sync runs first, when the store has neither a state nor a link of it (its pass is
  a first pull, knowing no item): the PROPFIND by which the pass asks whether the collection offers
  sync-collection, then, if it does, the REPORT without a token that asks for every member's data.

The pass's transport takes the early replies in order (:meth:`DavTransport.request`), each only if
the request it is about to send is byte for byte the one that was sent: same URL, same body (so the
same sync token), same headers, same credentials and auth scheme (:meth:`DavTransport.signature`).
The first request that differs drops the early replies left, and it and every later one go to the
server, as they would have. The scheme the early transport learnt from the server's 401 to its first
request is handed over with that request's reply, as the pass's transport would have learnt it from
the same 401: its next request is then signed as the early one was.

Why an early reply is as good as the pass's own: a sync-collection REPORT answers "what changed since
token T, up to the moment the server ran it", with the token of that moment; with no token it answers
the whole calendar as of that moment, with that moment's token. Had the pass started then, it would
have got exactly this answer; everything changed later is after the new token, which the pass saves
and the next pass continues from, so nothing is missed. The PROPFIND asks what the collection offers,
which a server answers the same way a moment later. If the binding's saved state moved between the
guess and the pass (another process ran a pass), the pass's body names another token or the pass
asks something else, the signatures differ and nothing early is used. Nothing but these reads is
sent early: never a write, never a request whose answer depends on more than the request.

Measured 2026-11-29, a first pull of 5,000 events from a Radicale on the same 2-core machine, which
other work loaded (load 0.8-3.2), in 80 alternated pairs of ``syncd sync`` over four runs: 6.97 s
median without the early first pull, 6.50 s with it; paired saving 0.52 s median (0.57 s mean), 56
pairs of 80 faster. The listing was sent 0.46 s sooner but in hand only 0.31 s sooner (medians of 10
traced pairs at load 1.3): the server's work competed with the pass's start for the two cores, which
a server on another machine does not.

What is held: a first pull's listing with every item's data is tens of MB at 50,000 events, so only
the binding the sync runs first gets one (its pass starts within the second), and it is dropped as
it is handed over; if that pass is skipped or fails before it asks, the listing stays until the
command ends. Token REPORTs go to at most :data:`MOST_EARLY` bindings.

An early request's failure (a wrong password, a server that is down, a state that cannot be read) is
never shown: the pass makes the same request and meets, and reports, the same failure itself. The
thread is a daemon thread that closes its connection when its answers are in: a reply no pass takes
(the binding's pass was skipped or failed before its first request) holds nothing up, not even the
process's exit.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from syncd.config import Binding, CalDavRemote
    from syncd.connectors.caldav_transport import DavTransport, EarlyTaken, HttpReply
    from syncd.store.peek import Saved

#: Bindings sent early at most: start-up hides about one request; a one-shot sync of hundreds of
#: bindings must not open hundreds of connections and ask the servers for as many reports at once.
MOST_EARLY = 4
#: The saved state's format this module reads (``syncd.connectors.caldav.STATE_VERSION``).
_STATE_VERSION = 1
_HEADERS = {"Depth": "0"}


@dataclass(slots=True)
class _Sent:
    """One early request: its signature as soon as it is sent, its reply when the server answered."""

    signature: tuple[object, ...]
    reply: HttpReply | None = None
    scheme: str | None = None


class EarlyReply:
    """The requests a binding's pass starts with, sent from a daemon thread and handed, in order, to
    the requests of one transport (:class:`~syncd.connectors.caldav_transport.DavTransport`'s
    ``early``), each once and only to the same request. ``state``: the binding's saved state, or
    ``None`` for a first pull."""

    def __init__(self, remote: CalDavRemote, state: str | None) -> None:
        self._changed = threading.Condition()
        self._sent: list[_Sent] = []
        self._taken = 0
        self._ended = False
        self._dropped = False
        thread = threading.Thread(target=self._run, args=(remote, state), name="syncd-early-request", daemon=True)
        thread.start()

    def _run(self, remote: CalDavRemote, state: str | None) -> None:
        try:
            # Imported here: this thread loads the transport while the main thread loads the rest.
            from syncd.connectors.caldav_transport import DavTransport

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
                url = remote.url if remote.url.endswith("/") else remote.url + "/"
                if state is None:
                    self._first_pull(transport, url)
                else:
                    self._from_token(transport, url, state)
            finally:
                transport.close()
        except Exception:  # noqa: BLE001 - never shown: the pass sends these requests itself and reports what it meets
            pass
        finally:
            with self._changed:
                self._ended = True
                self._changed.notify_all()

    def _from_token(self, transport: DavTransport, url: str, state: str) -> None:
        """What ``CalDavConnector._sync_pass`` sends first: ``DavCollection.sync(token)``."""
        from syncd.connectors import caldav_protocol as dav

        token, scheme = _saved_token(state, dav.canonical_path(url, url))
        if token is None:
            return
        if scheme:
            transport.use_scheme(scheme)
        self._send(transport, "REPORT", url, dav.sync_collection_body(token), xml=False)

    def _first_pull(self, transport: DavTransport, url: str) -> None:
        """What ``CalDavConnector._collection_pass`` sends for a collection with no saved state and no
        known item: ``DavCollection.supports_sync()`` (the app leaves ``use_sync_collection`` unset,
        and no config setting sets it), then ``DavCollection.sync(None, bodies)``."""
        from syncd.connectors import caldav_protocol as dav

        reply = self._send(transport, "PROPFIND", url, dav.propfind_body([dav.SUPPORTED_REPORT_SET]), xml=True)
        if reply is None:
            return
        path = dav.canonical_path(url, url)
        own = next((r for r in dav.parse_multistatus(reply.tree, url).responses
                    if r.path.rstrip("/") == path.rstrip("/")), None)
        if own is None or dav.SYNC_COLLECTION not in own.leaves(dav.SUPPORTED_REPORT_SET):
            return  # the pass reads a ctag and lists etags instead: not guessed at
        self._send(transport, "REPORT", url, dav.sync_collection_body(None, data=True), xml=False)

    def _send(self, transport: DavTransport, method: str, url: str, body: bytes, *, xml: bool) -> HttpReply | None:
        """Sends one request unless the pass has gone its own way; its reply, kept for the pass, if
        the server answered 207 (anything else the pass meets and reports itself)."""
        signature = transport.signature(method, url, body, _HEADERS, xml)
        with self._changed:
            if self._dropped:
                return None
            sent = _Sent(signature)
            self._sent.append(sent)
            # Known before the reply: a pass whose request differs need not wait for the answer.
            self._changed.notify_all()
        reply = transport.request(method, url, body, _HEADERS, xml=xml)
        if reply.status != 207:
            return None
        with self._changed:
            if self._dropped:
                return None
            sent.reply, sent.scheme = reply, transport.scheme
            self._changed.notify_all()
        return reply

    def answer(self, signature: tuple[object, ...]) -> EarlyTaken | None:
        """The next early reply, if it answered the request of this ``signature``, with the auth scheme
        learnt by then. Anything else drops every early reply left: each is given once, in order.

        Waits for the early thread as long as it takes: its request is the caller's own, sent sooner,
        under the same socket timeouts (and no waiting out of a busy server: ``max_backoff`` 0), so
        it ends no later than the caller's would have; a request that differs is told so as soon as
        the early one is sent, not when it is answered."""
        from syncd.connectors.caldav_transport import EarlyTaken

        with self._changed:
            index = self._taken
            self._changed.wait_for(lambda: len(self._sent) > index or self._ended)
            if len(self._sent) > index and self._sent[index].signature == signature:
                self._changed.wait_for(lambda: self._sent[index].reply is not None or self._ended)
                sent = self._sent[index]
                if sent.reply is not None:
                    self._taken += 1
                    taken = EarlyTaken(sent.reply, sent.scheme)
                    sent.reply = None  # handed over: a whole calendar's listing is not held twice
                    return taken
            self._dropped = True
            for sent in self._sent:
                sent.reply = None
            return None


class EarlyReplies:
    """The early requests of one ``syncd sync``, by binding name; each is handed over once."""

    def __init__(self, replies: Mapping[str, EarlyReply]) -> None:
        self._replies = dict(replies)

    def take(self, binding: str) -> EarlyReply | None:
        return self._replies.pop(binding, None)


def send_early(bindings: Sequence[Binding], saved: Saved | None) -> EarlyReplies:
    """Sends the first requests of the CalDAV bindings among ``bindings`` (in the order the sync runs
    them) that the ``saved`` store lets guess: those with a saved state (at most :data:`MOST_EARLY`),
    and the first binding if it is new (:attr:`Saved.new <syncd.store.peek.Saved.new>`). A calendar
    named by display name is left out (its first requests look it up), as is every other remote type."""
    replies: dict[str, EarlyReply] = {}
    if saved is None:
        return EarlyReplies(replies)
    for index, binding in enumerate(bindings):
        if len(replies) == MOST_EARLY:
            break
        remote = binding.remote
        if remote.type != "caldav" or remote.calendar or remote.tasks_calendar:
            continue
        state = saved.states.get(binding.name)
        if state is not None:
            replies[binding.name] = EarlyReply(remote, state)
        elif index == 0 and binding.name in saved.new:
            replies[binding.name] = EarlyReply(remote, None)
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
