"""Errors as Exchange reports them: whole-request SOAP faults and per-item response codes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from lxml import etree

from .xmlns import SOAP, E, T, new, sub


class ItemError(Exception):
    """An error for one item of a request: becomes a ResponseMessage with ResponseClass="Error"."""

    def __init__(self, code: str, text: str) -> None:
        super().__init__(f"{code}: {text}")
        self.code = code
        self.text = text


def item_not_found() -> ItemError:
    return ItemError("ErrorItemNotFound", "The specified object was not found in the store.")


def access_denied() -> ItemError:
    return ItemError("ErrorAccessDenied", "Access is denied. Check credentials and try again.")


@dataclass
class SoapFault(Exception):
    """A whole-request failure: HTTP 500 with a soap:Fault whose detail names the EWS error code.

    `message_xml` holds the children of t:MessageXml, e.g. BackOffMilliseconds for ErrorServerBusy.
    """

    code: str
    message: str
    message_xml: list[etree._Element] = field(default_factory=list)
    status: int = 500

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"

    def envelope(self) -> etree._Element:
        env = new(f"{{{SOAP}}}Envelope")
        fault = sub(sub(env, f"{{{SOAP}}}Body"), f"{{{SOAP}}}Fault")
        faultcode = etree.SubElement(fault, "faultcode", nsmap={"a": T})
        faultcode.text = f"a:{self.code}"
        faultstring = sub(fault, "faultstring", self.message)
        faultstring.set("{http://www.w3.org/XML/1998/namespace}lang", "en-US")
        detail = sub(fault, "detail")
        etree.SubElement(detail, f"{{{E}}}ResponseCode", nsmap={"e": E}).text = self.code
        etree.SubElement(detail, f"{{{E}}}Message", nsmap={"e": E}).text = self.message
        if self.message_xml:
            holder = etree.SubElement(detail, f"{{{T}}}MessageXml", nsmap={"t": T})
            holder.extend(self.message_xml)
        return env


def server_busy(back_off_ms: int) -> SoapFault:
    value = etree.Element(f"{{{T}}}Value", Name="BackOffMilliseconds")
    value.text = str(back_off_ms)
    return SoapFault(
        "ErrorServerBusy", "The server cannot service this request right now. Try again later.", [value]
    )


def schema_validation(line: int, column: int, violation: str) -> SoapFault:
    parts = []
    for name, text in (("LineNumber", str(line)), ("LinePosition", str(column)), ("Violation", violation)):
        elem = etree.Element(f"{{{T}}}{name}")
        elem.text = text
        parts.append(elem)
    return SoapFault("ErrorSchemaValidation", "The request failed schema validation.", parts)


def impersonate_denied() -> SoapFault:
    return SoapFault(
        "ErrorImpersonateUserDenied",
        "The account does not have permission to impersonate the requested user.",
    )


def non_existent_mailbox(smtp: str) -> SoapFault:
    return SoapFault("ErrorNonExistentMailbox", f"The SMTP address has no mailbox associated with it: {smtp}")


def not_implemented(operation: str) -> SoapFault:
    # Not an Exchange code on purpose: a test that reaches an operation this server lacks must fail loudly.
    return SoapFault(
        "ErrorNotImplementedByTestServer", f"The test EWS server does not implement {operation}."
    )


def internal_server_error() -> SoapFault:
    """A whole-request failure Exchange reports for a fault of its own (not retried by clients)."""
    return SoapFault("ErrorInternalServerError", "An internal server error occurred. The operation failed.")


def at_request(server, nth: int, fault: SoapFault) -> Callable[[], None]:
    """Answer the `nth` request `server` (an EwsServer) receives from now on with `fault`, whatever
    its operation: for a fault matrix that fails each request of a pass in turn. Returns a function
    that cancels the fault if it has not hit yet.

    Chains `server.after_request`: once request `nth - 1` is answered, the fault is injected for the
    next one, and the previous hook is put back.
    """
    previous = server.after_request
    seen = 0

    def count(record) -> None:
        nonlocal seen
        if previous is not None:
            previous(record)
        seen += 1
        if seen == nth - 1:
            server.inject(fault)
            server.after_request = previous

    def cancel() -> None:
        if server.after_request is count:
            server.after_request = previous
        with server._meta:
            server._injections[:] = [i for i in server._injections if i.fault is not fault]

    if nth <= 1:
        server.inject(fault)
    else:
        server.after_request = count
    return cancel
