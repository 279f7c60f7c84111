"""The EWS schemas: request/response validation and the element order of EWS types.

The schema folder and the compiled validator come from the shared tests/ews_schema.py (compiled
once per process); this module adds what a server needs on top.
"""

from __future__ import annotations

import functools
import threading

from ews_schema import validation_dir, validator
from lxml import etree

_XS = "{http://www.w3.org/2001/XMLSchema}"
# lxml's XMLSchema is not safe to use from several threads at once; the server is threaded.
_lock = threading.Lock()


def validation_error(body: etree._Element) -> tuple[int, int, str] | None:
    """Validate one SOAP body payload as its own document: None, or (line, column, message) of the
    first violation, as ErrorSchemaValidation's MessageXml reports it.

    The payload is copied into a fresh document so that line numbers are its own.
    """
    doc = etree.ElementTree(etree.fromstring(etree.tostring(body)))
    with _lock:
        schema = validator()
        if schema.validate(doc):
            return None
        error = schema.error_log.last_error
    return error.line, error.column, error.message


@functools.cache
def _types_doc() -> etree._ElementTree:
    return etree.parse(str(validation_dir() / "types.xsd"))


@functools.cache
def element_order(type_name: str) -> tuple[str, ...]:
    """Child element names of a complexType of types.xsd, base types first, in schema order."""
    root = _types_doc().getroot()
    found = root.find(f"{_XS}complexType[@name='{type_name}']")
    if found is None:
        raise KeyError(type_name)
    names: list[str] = []
    extension = found.find(f"{_XS}complexContent/{_XS}extension")
    container = found
    if extension is not None:
        names.extend(element_order(extension.get("base").split(":")[-1]))
        container = extension
    sequence = container.find(f"{_XS}sequence")
    if sequence is not None:
        names.extend(e.get("name") for e in sequence.iter(f"{_XS}element") if e.get("name"))
    return tuple(names)


@functools.cache
def boolean_elements(type_name: str) -> frozenset[str]:
    """Names of the xs:boolean children of a complexType (with its base types)."""
    root = _types_doc().getroot()
    found = root.find(f"{_XS}complexType[@name='{type_name}']")
    names: set[str] = set()
    extension = found.find(f"{_XS}complexContent/{_XS}extension")
    if extension is not None:
        names |= boolean_elements(extension.get("base").split(":")[-1])
        found = extension
    sequence = found.find(f"{_XS}sequence")
    if sequence is not None:
        names |= {e.get("name") for e in sequence.iter(f"{_XS}element") if e.get("type") == "xs:boolean"}
    return frozenset(names)
