"""Owner, participants and "regarding" links <-> ORGANIZER, ATTENDEE and syncd's X-properties.

* Participants with an e-mail are ATTENDEEs (CN, ROLE, PARTSTAT, RSVP=TRUE while a response is
  awaited, and ``X-SYNCD-KIND`` with the CRM participant kind). A returning attendee keeps the
  parameters other clients put on it (SCHEDULE-STATUS, CUTYPE, ...).
* ORGANIZER and ATTENDEEs carry ``SCHEDULE-AGENT=CLIENT`` and no RSVP unless the binding has
  ``send_invitations``: a server with implicit scheduling (RFC 6638) must not mail customers on its own.
  The server's scheduling parameters are not read, so they never look like a user's change.
* ORGANIZER (the owner) is written only when there are attendees: RFC 5545 3.8.4.3 forbids it on an
  item that is on one user's calendar only. The organizer is not a participant unless also an attendee.
  An organizer who is neither the calendar's user nor a CRM user (an invitation from outside) is the
  activity's ``organizer`` and written back as it was.
* A participant of kind resource (a room, equipment) or group carries CUTYPE=ROOM or GROUP; inbound,
  CUTYPE ROOM/RESOURCE/GROUP gives the kind when syncd's own parameter is missing. A room known only by
  a non-mail URI (``urn:uuid:...``) is a participant named by it and written back as that attendee.
* Participants without an e-mail travel as ``X-SYNCD-PARTICIPANT`` and links as ``X-SYNCD-REGARDING``,
  each a JSON object in a TEXT value; a participant's JSON carries its position (``at``) so the order
  of the participant list survives the split into two property kinds.
* Inbound, an attendee's kind is its ``X-SYNCD-KIND`` parameter if valid, else the CRM directory's
  (case-insensitive e-mail match), else external. What the CRM's rules (:mod:`syncd.store.rules`) cannot
  keep is read as the nearest thing they can: an attendee without e-mail and name (``urn:uuid:...``, no
  CN) is named by its address; one that says "user" but has no e-mail is external (users are known by
  e-mail); an ``X-SYNCD-PARTICIPANT`` naming no one carries nothing and is left out.
* CN is the CRM's name as it is (:mod:`.ical_params`; what a CN cannot hold, such as control
  characters, is left out of it and the exact name kept in ``X-SYNCD-CN`` beside it).
"""

from __future__ import annotations

import json
import re
from typing import Any

import structlog
from icalendar import vCalAddress, vText

from syncd.errors import ItemError
from syncd.mapping.context import MappingContext
from syncd.mapping.ical_params import hidden_key, set_text_param, text_param
from syncd.mapping.ical_props import (
    P_KIND,
    X_PARTICIPANT,
    X_REGARDING,
    all_values,
    lookup,
    unescape,
)
from syncd.model import (
    Activity,
    Participant,
    ParticipantKind,
    Regarding,
    RegardingKind,
    Response,
    Role,
)

_PARTSTAT = {
    Response.ACCEPTED: "ACCEPTED",
    Response.DECLINED: "DECLINED",
    Response.TENTATIVE: "TENTATIVE",
    Response.NEEDS_ACTION: "NEEDS-ACTION",
}
_RESPONSE = {v: k for k, v in _PARTSTAT.items()}

log = structlog.get_logger(__name__)
#: Attendee parameters syncd sets; all others on a returning attendee are kept.
_OWNED_PARAMS = ("CN", hidden_key("CN"), "ROLE", "PARTSTAT", "RSVP", P_KIND)


def email_of(address: Any) -> str | None:
    """The e-mail of a cal-address (``mailto:`` in any case), or ``None`` for other URIs.

    A bare e-mail (libical's rooms: ``ATTENDEE;CUTYPE=ROOM:conf_Big@example.com``) is that e-mail: it is
    no URI (an e-mail has no colon before its ``@``), and there is nothing else it could name."""
    value = str(address).strip()
    if value[:7].casefold() == "mailto:":
        value = value[7:].strip()
        return value or None
    return value if _BARE_EMAIL.fullmatch(value) else None


#: One ``@`` between non-empty parts without white space, colon or angle brackets: no URI, no "Name <a@b>".
_BARE_EMAIL = re.compile(r"[^\s@:<>]+@[^\s@:<>]+")


def _address(email: str, base: Any | None) -> vCalAddress:
    address = vCalAddress(f"mailto:{email}")
    if base is not None:
        for key, value in base.params.items():
            if key.upper() not in _OWNED_PARAMS:
                address.params[key] = value
    return address


def write_people(component: Any, activity: Activity, ctx: MappingContext, base: Any | None) -> None:
    previous = {
        (email_of(a) or "").casefold(): a for a in (all_values(base, "ATTENDEE") if base is not None else [])
    }
    attendees = [p for p in activity.participants if p.email]
    if activity.organizer is not None and activity.organizer.email:
        # An invitation from outside the CRM: its organizer stays who it is.
        organizer = _address(activity.organizer.email, base.get("ORGANIZER") if base is not None else None)
        set_text_param(organizer, "CN", activity.organizer.name)
        component.add("ORGANIZER", organizer)
    elif attendees:
        organizer = _address(activity.owner, base.get("ORGANIZER") if base is not None else None)
        name = ctx.owner.name if activity.owner.casefold() == ctx.owner.email.casefold() else None
        set_text_param(organizer, "CN", name or ctx.directory.users.get(activity.owner.casefold()))
        component.add("ORGANIZER", organizer)
    for p in attendees:
        assert p.email is not None
        address = _address(p.email, previous.get(p.email.casefold()))
        set_text_param(address, "CN", p.name)
        address.params["ROLE"] = "OPT-PARTICIPANT" if p.role is Role.OPTIONAL else "REQ-PARTICIPANT"
        address.params["PARTSTAT"] = _PARTSTAT[p.response]
        if p.response is Response.NEEDS_ACTION:
            address.params["RSVP"] = "TRUE"
        address.params[P_KIND] = p.kind.value
        _cutype(address, p.kind)
        component.add("ATTENDEE", address)
    # A room or resource known by a non-mail URI (urn:uuid:...) is read as a participant named by it
    # (or by its CN): written back as the attendee it was, not only as syncd's hidden copy.
    unmailed = {_unmailed_name(a): a for a in (all_values(base, "ATTENDEE") if base is not None else [])
                if email_of(a) is None and _unmailed_name(a)}
    for at, p in enumerate(activity.participants):
        if not p.email and p.name in unmailed:
            component.add("ATTENDEE", _unmailed(unmailed.pop(p.name), p))
        elif not p.email:
            payload = {
                "at": at, "kind": p.kind.value, "name": p.name, "role": p.role.value, "response": p.response.value
            }
            component.add(X_PARTICIPANT, vText(json.dumps(payload, ensure_ascii=False)))
    for r in activity.regarding:
        payload = {"kind": r.kind.value, "id": r.id, "name": r.name}
        component.add(X_REGARDING, vText(json.dumps(payload, ensure_ascii=False)))
    _schedule(component, ctx.send_invitations, _server_scheduled(base))


def _server_scheduled(base: Any | None) -> set[tuple[str, str]]:
    """(property, e-mail) of the people the server already schedules on the stored item: a phone's
    meeting, or one an older syncd wrote."""
    if base is None:
        return set()
    return {
        (name, email.casefold())
        for name in ("ORGANIZER", "ATTENDEE")
        for address in all_values(base, name)
        if (email := email_of(address)) and str(address.params.get("SCHEDULE-AGENT", "SERVER")).upper() == "SERVER"
    }


def _schedule(component: Any, send_invitations: bool, server_scheduled: set[tuple[str, str]]) -> None:
    """Who delivers this item to its people (RFC 6638 3.2, 7.1): by default the client, which is syncd,
    and syncd sends nothing, so no server mails an invitation, update or cancellation (SCHEDULE-AGENT on
    the ORGANIZER too keeps a server from replying for an attendee-owner); no reply is asked for (RSVP).
    With ``send_invitations`` the server schedules as it sees fit. A forced re-send is never syncd's.

    A person the server already schedules on the stored item stays the server's: taking them from it
    makes an RFC 6638 server mail them a cancellation at once (Cyrus does), so the meeting would vanish
    from their calendar. The server then tells them of changes, as it would for an edit on the phone."""
    for name in ("ORGANIZER", "ATTENDEE"):
        for address in all_values(component, name):
            address.params.pop("SCHEDULE-FORCE-SEND", None)
            if send_invitations:
                address.params.pop("SCHEDULE-AGENT", None)
            elif (name, (email_of(address) or "").casefold()) in server_scheduled:
                continue
            else:
                address.params["SCHEDULE-AGENT"] = "CLIENT"
                address.params.pop("RSVP", None)


_CUTYPE = {ParticipantKind.RESOURCE: "ROOM", ParticipantKind.GROUP: "GROUP"}
_KIND_OF_CUTYPE = {
    "ROOM": ParticipantKind.RESOURCE, "RESOURCE": ParticipantKind.RESOURCE, "GROUP": ParticipantKind.GROUP,
}


def _cutype(address: vCalAddress, kind: ParticipantKind) -> None:
    """CUTYPE for a room, equipment or group; a CUTYPE that says otherwise goes (the CRM changed it)."""
    current = str(address.params.get("CUTYPE", "")).upper()
    if kind in _CUTYPE:
        if _KIND_OF_CUTYPE.get(current) is not kind:
            address.params["CUTYPE"] = _CUTYPE[kind]  # ROOM or RESOURCE a client chose is kept
    elif current in _KIND_OF_CUTYPE:
        del address.params["CUTYPE"]


def _unmailed(attendee: Any, p: Participant) -> vCalAddress:
    address = vCalAddress(str(attendee))
    for key, value in getattr(attendee, "params", {}).items():
        address.params[key] = value
    name = text_param(attendee, "CN")
    if name and name.strip():
        set_text_param(address, "CN", name)  # as it was read, so as it reads again
    address.params["ROLE"] = "OPT-PARTICIPANT" if p.role is Role.OPTIONAL else "REQ-PARTICIPANT"
    address.params["PARTSTAT"] = _PARTSTAT[p.response]
    address.params[P_KIND] = p.kind.value
    _cutype(address, p.kind)
    return address


def _unmailed_name(attendee: Any) -> str | None:
    """The name a non-mail attendee is read under (its CN, else its URI); see :func:`_attendee`."""
    cn = text_param(attendee, "CN")
    return cn if cn and cn.strip() else (str(attendee).strip() or None)


def hidden_person(p: Participant) -> bool:
    """Travels in X-SYNCD-PARTICIPANT (no e-mail to invite): hidden from the calendar's user."""
    return p.email is None


def read_organizer(component: Any, ctx: MappingContext, owner: str) -> Participant | None:
    """The ORGANIZER when it is neither the owner nor the calendar's user (an outside invitation)."""
    value = lookup(component, "ORGANIZER")
    email = email_of(value) if value is not None else None
    if not email or email.casefold() in (owner.casefold(), ctx.owner.email.casefold()):
        return None
    return Participant(ctx.directory.classify(email), email, text_param(value, "CN"))


def read_owner(component: Any, ctx: MappingContext) -> str:
    """The organizer when it is a CRM user (an activity copied to a colleague), else the calendar's owner."""
    organizer = lookup(component, "ORGANIZER")
    email = email_of(organizer) if organizer is not None else None
    if email and email.casefold() != ctx.owner.email.casefold() and email.casefold() in ctx.directory.users:
        return email
    return ctx.owner.email


def read_participants(component: Any, ctx: MappingContext, item: str) -> tuple[Participant, ...]:
    result: list[Participant] = []
    for attendee in all_values(component, "ATTENDEE"):
        participant = _attendee(attendee, ctx)
        if participant is None:
            log.warning("attendee without address or name left out", item=item)
        else:
            result.append(participant)
    for payload in _json_values(component, X_PARTICIPANT, item):
        try:
            participant = Participant(
                kind=ParticipantKind(payload["kind"]),
                name=payload.get("name"),
                role=Role(payload.get("role", Role.REQUIRED.value)),
                response=Response(payload.get("response", Response.NEEDS_ACTION.value)),
            )
            at = int(payload.get("at", len(result)))
        except (KeyError, ValueError, TypeError) as exc:
            raise ItemError(item, X_PARTICIPANT, f"unreadable participant: {exc}") from None
        if not isinstance(participant.name, str) or not participant.name.strip():
            log.warning("participant without name left out", item=item, prop=X_PARTICIPANT)
            continue
        if participant.kind is ParticipantKind.USER:
            participant = Participant(
                ParticipantKind.EXTERNAL, None, participant.name, participant.role, participant.response
            )
        result.insert(min(max(at, 0), len(result)), participant)
    return tuple(result)


def _attendee(attendee: Any, ctx: MappingContext) -> Participant | None:
    params = getattr(attendee, "params", {})
    email = email_of(attendee)
    kind_param = str(params.get(P_KIND, "")).casefold()
    cutype = _KIND_OF_CUTYPE.get(str(params.get("CUTYPE", "")).upper())
    if kind_param in ParticipantKind._value2member_map_:
        kind = ParticipantKind(kind_param)
    elif cutype is not None:
        kind = cutype
    else:
        kind = ctx.directory.classify(email) if email else ParticipantKind.EXTERNAL
    optional = str(params.get("ROLE", "")).upper() in ("OPT-PARTICIPANT", "NON-PARTICIPANT")
    role = Role.OPTIONAL if optional else Role.REQUIRED
    response = _RESPONSE.get(str(params.get("PARTSTAT", "NEEDS-ACTION")).upper(), Response.NEEDS_ACTION)
    name = text_param(attendee, "CN")
    if email is None:
        kind = ParticipantKind.EXTERNAL if kind is ParticipantKind.USER else kind
        if not (name or "").strip():
            uri = str(attendee).strip()
            # urn:uuid:..., a room or resource: its address is all there is; an empty mailto: is nothing
            name = None if uri[:7].casefold() == "mailto:" else uri or None
            if name is None:
                return None
    return Participant(kind=kind, email=email, name=name, role=role, response=response)


def read_regarding(component: Any, item: str) -> tuple[Regarding, ...]:
    result = []
    for payload in _json_values(component, X_REGARDING, item):
        try:
            result.append(
                Regarding(kind=RegardingKind(payload["kind"]), id=str(payload["id"]), name=payload.get("name"))
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise ItemError(item, X_REGARDING, f"unreadable link: {exc}") from None
    return tuple(result)


def _json_values(component: Any, name: str, item: str) -> list[dict[str, Any]]:
    result = []
    for value in all_values(component, name):
        try:
            payload = json.loads(unescape(value.to_ical().decode("utf-8")))
        except ValueError:
            raise ItemError(item, name, "is not valid JSON") from None
        if not isinstance(payload, dict):
            raise ItemError(item, name, "is not a JSON object")
        result.append(payload)
    return result
