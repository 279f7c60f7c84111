"""EWS XML namespaces and the few element helpers every module needs."""

from __future__ import annotations

from typing import TypeAlias

from lxml import etree

SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
M = "http://schemas.microsoft.com/exchange/services/2006/messages"
T = "http://schemas.microsoft.com/exchange/services/2006/types"
E = "http://schemas.microsoft.com/exchange/services/2006/errors"
NSMAP = {"s": SOAP, "m": M, "t": T}

Element: TypeAlias = etree._Element


def m(tag: str) -> str:
    return f"{{{M}}}{tag}"


def t(tag: str) -> str:
    return f"{{{T}}}{tag}"


def local(elem: Element) -> str:
    return etree.QName(elem).localname


def sub(parent: Element, tag: str, text: str | None = None, **attrs: str | None) -> Element:
    """Append a child; `tag` is a Clark name (use m()/t())."""
    child = etree.SubElement(parent, tag, {k: v for k, v in attrs.items() if v is not None})
    if text is not None:
        child.text = text
    return child


def new(tag: str, text: str | None = None, **attrs: str | None) -> Element:
    elem = etree.Element(tag, {k: v for k, v in attrs.items() if v is not None}, nsmap=NSMAP)
    if text is not None:
        elem.text = text
    return elem


def xml_bool(value: bool) -> str:
    return "true" if value else "false"


def parse_bool(text: str | None) -> bool:
    return (text or "").strip() in ("true", "1")
