"""Where the EWS schemas are, and a compiled validator for EWS message payloads (shared by EWS tests).

The schemas ship with the tests, in ``tests/data/ews-schema`` (``tests/data/README.md`` says where they
come from); ``SYNCD_EWS_SCHEMA`` names another folder of the same layout, to try a newer copy. Its
``validation/`` subfolder holds the copies lxml compiles offline. Validate one SOAP body payload
(``m:CreateItem``, ``m:GetItemResponse``, ...) as its own document.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

from lxml import etree

_BUNDLED = Path(__file__).resolve().parent / "data" / "ews-schema"


def schema_dir() -> Path:
    """The schema folder (services.wsdl, messages.xsd, types.xsd and validation/)."""
    configured = os.environ.get("SYNCD_EWS_SCHEMA")
    return Path(configured) if configured else _BUNDLED


def validation_dir() -> Path:
    """The copies lxml compiles offline (types.xsd importing a local xml.xsd)."""
    return schema_dir() / "validation"


@cache
def validator() -> etree.XMLSchema:
    """messages.xsd compiled once per process (about 0.3 s)."""
    return etree.XMLSchema(etree.parse(str(validation_dir() / "messages.xsd")))


def assert_valid(payload: etree._Element) -> None:
    """Raise ``lxml.etree.DocumentInvalid`` with the schema's complaint if ``payload`` is not valid EWS."""
    validator().assertValid(etree.ElementTree(payload))
