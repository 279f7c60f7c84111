"""Where the EWS schemas are, and a compiled validator for EWS message payloads (shared by EWS tests).

``SYNCD_EWS_SCHEMA`` names the folder of Microsoft's schemas (default: ``shared/ews-schema`` beside the
repository, as CI lays it out); its ``validation/`` subfolder holds the copies lxml compiles offline. Validate one SOAP body payload
(``m:CreateItem``, ``m:GetItemResponse``, ...) as its own document.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

from lxml import etree

_REPO_ROOT = Path(__file__).resolve().parents[1]


def schema_dir() -> Path:
    """The schema folder (services.wsdl, messages.xsd, types.xsd and validation/)."""
    configured = os.environ.get("SYNCD_EWS_SCHEMA")
    return Path(configured) if configured else (_REPO_ROOT.parent / "shared" / "ews-schema").resolve()


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
