"""JSON Schema for Microsoft Graph bodies, derived from Graph's published metadata (OData CSDL 4.0).

    schema = load_schema()
    schema.check("microsoft.graph.event", body)                  # [] or ["$.start.dateTime: ...", ...]
    schema.check("Collection(microsoft.graph.event)", page)      # {"value": [...], "@odata.nextLink": ...}
    schema.json_schema("microsoft.graph.todoTask")               # the Draft 2020-12 schema, for a look

The metadata ships with the tests (``tests/data/graph-schema``, whose README says where it comes from);
``SYNCD_GRAPH_SCHEMA`` names another ``.csdl`` / ``.csdl.gz`` file, or a folder holding one.

How the CSDL becomes JSON Schema (``$defs`` for each entity and complex type reachable from the requested
one, including the types derived from those):
- entity and complex types are flattened along their BaseType chain; a value may name a derived type in
  ``@odata.type`` (``#microsoft.graph.openTypeExtension`` where an ``extension`` is declared), and is then
  checked as that type;
- strict: a property the type does not declare is refused, open types included (``event`` is one), since
  a body the service would store as a dynamic property is a bug in syncd; ``openTypeExtension`` alone takes
  any extra property, custom data being its purpose;
- navigation properties are allowed as their values (expanded or contained: ``attachments``,
  ``singleValueExtendedProperties``, ``instances``, ...); OData control information (``@odata.type``,
  ``@odata.etag``, ``@odata.nextLink``, ``name@odata.bind``, ... and ``@removed`` of delta rows) always;
- enums are their member names (a flags enum's value lists them, comma-separated); in a request in any
  case, since the service takes "HTML" and "Required" (its API reference sends them) and answers "html";
  Edm primitives are JSON types with patterns for the string-encoded ones (no ``format``, which
  validators may ignore);
- ``Nullable="false"`` refuses null; a collection is an array and never null itself (OData's rule), its
  items obey Nullable.

One refinement is not in the CSDL: ``dateTimeTimeZone.dateTime`` is an Edm.String there, but Graph's API
reference defines it as a local date and time (``2017-08-29T04:00:00.0000000``), so it is checked as one.
"""

from __future__ import annotations

import gzip
import os
import re
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema
from lxml import etree

_BUNDLED = Path(__file__).resolve().parent.parent / "data" / "graph-schema" / "v1.0-Prod.csdl.gz"
_EDM = "{http://docs.oasis-open.org/odata/ns/edm}"
_DEFS = "#/$defs/"

# Edm primitive -> (JSON type, extra keywords, what a problem calls it). Patterns follow OData's JSON
# format (OData-JSON 4.01 section 7.1), read liberally: Binary in either base64 alphabet (OData says
# base64url, Graph's attachments use the standard one), Duration with any ISO 8601 designator. The
# special Double values NaN and INF (strings in OData JSON) are refused: Graph's calendar types never
# carry them.
_DATE = r"\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])"
_TIME = r"([01]\d|2[0-3]):[0-5]\d(:[0-5]\d(\.\d{1,12})?)?"
_PRIMITIVES: dict[str, tuple[str, dict[str, Any], str]] = {
    "Edm.String": ("string", {}, "a string"),
    "Edm.Boolean": ("boolean", {}, "a boolean"),
    "Edm.Byte": ("integer", {"minimum": 0, "maximum": 255}, "an Edm.Byte (0 to 255)"),
    "Edm.SByte": ("integer", {"minimum": -128, "maximum": 127}, "an Edm.SByte (-128 to 127)"),
    "Edm.Int16": ("integer", {"minimum": -(2**15), "maximum": 2**15 - 1}, "an Edm.Int16"),
    "Edm.Int32": ("integer", {"minimum": -(2**31), "maximum": 2**31 - 1}, "an Edm.Int32"),
    "Edm.Int64": ("integer", {"minimum": -(2**63), "maximum": 2**63 - 1}, "an Edm.Int64"),
    "Edm.Single": ("number", {}, "a number"),
    "Edm.Double": ("number", {}, "a number"),
    "Edm.Decimal": ("number", {}, "a number"),
    "Edm.DateTimeOffset": (
        "string",
        {"pattern": rf"^{_DATE}T{_TIME}(Z|[+-]([01]\d|2[0-3]):[0-5]\d)$"},
        "an Edm.DateTimeOffset (ISO 8601 with Z or an offset, e.g. 2017-04-15T12:00:00Z)",
    ),
    "Edm.Date": ("string", {"pattern": rf"^{_DATE}$"}, "an Edm.Date (YYYY-MM-DD)"),
    "Edm.TimeOfDay": ("string", {"pattern": rf"^{_TIME}$"}, "an Edm.TimeOfDay (hh:mm[:ss[.fff]])"),
    "Edm.Duration": (
        "string",
        {"pattern": r"^-?P(?=\d|T\d)(\d+Y)?(\d+M)?(\d+W)?(\d+D)?(T(?=\d)(\d+H)?(\d+M)?(\d+(\.\d+)?S)?)?$"},
        "an Edm.Duration (ISO 8601, e.g. PT1H30M)",
    ),
    "Edm.Guid": (
        "string",
        {"pattern": r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"},
        "an Edm.Guid",
    ),
    "Edm.Binary": ("string", {"pattern": r"^[A-Za-z0-9+/_-]*={0,2}$"}, "an Edm.Binary (base64)"),
    # A stream's value does not travel inline in JSON; what stands for it is its media link.
    "Edm.Stream": ("string", {}, "a string"),
}
# Properties whose CSDL type is looser than the API reference defines them: (type, property) -> def name.
_REFINED = {("microsoft.graph.dateTimeTimeZone", "dateTime"): "syncd.localDateTime"}
_REFINEMENTS: dict[str, tuple[str, dict[str, Any], str]] = {
    "syncd.localDateTime": (
        "string",
        {"pattern": rf"^{_DATE}T{_TIME}$"},
        "a local date and time without offset (e.g. 2017-08-29T04:00:00.0000000), as dateTimeTimeZone takes",
    ),
}
# Open types whose extra properties are their purpose; every other open type is checked as closed.
_OPEN = frozenset({"microsoft.graph.openTypeExtension"})

# OData control information (OData-JSON 4.01 sections 4.5, 15): on an object, and on one of its properties.
_CONTROL = {
    r"^@odata\.count$": {"type": "integer"},
    r"^@odata\.(?!count$)[A-Za-z]+$": {"type": "string"},
    r"^[A-Za-z_][A-Za-z0-9_]*@odata\.[A-Za-z]+$": True,  # name@odata.bind is an array, @odata.count a number
}
_REMOVED = {
    "type": "object",
    "properties": {"reason": {"enum": ["changed", "deleted"], "title": "changed or deleted"}},
    "additionalProperties": False,
}


@dataclass(frozen=True)
class Property:
    name: str
    type: str  # qualified by namespace: "Edm.String", "microsoft.graph.attendee"
    collection: bool
    nullable: bool


@dataclass(frozen=True)
class StructuredType:
    """An entity or complex type as declared (own properties only; see ``Model.properties``)."""

    name: str
    base: str | None
    abstract: bool
    open: bool
    properties: tuple[Property, ...]


@dataclass(frozen=True)
class EnumType:
    name: str
    members: tuple[str, ...]
    flags: bool


@dataclass(frozen=True)
class Model:
    """The types of a CSDL document, by qualified name, and each type's direct derived types."""

    structured: Mapping[str, StructuredType]
    enums: Mapping[str, EnumType]
    derived: Mapping[str, tuple[str, ...]]

    def properties(self, name: str) -> tuple[Property, ...]:
        """The properties of ``name`` with those of its base types, the root's first."""
        own = self.structured[name]
        inherited = self.properties(own.base) if own.base else ()
        return inherited + own.properties

    def descendants(self, name: str) -> list[str]:
        found: list[str] = []
        for child in self.derived.get(name, ()):
            found += [child, *self.descendants(child)]
        return found

    def qualified(self, name: str) -> str:
        """``name`` as the model spells it: a leading '#' and the ``graph`` alias are accepted."""
        name = name.removeprefix("#")
        if name in self.structured or name in self.enums:
            return name
        alias = "microsoft." + name
        if alias in self.structured or alias in self.enums:
            return alias
        raise KeyError(f"{name!r} is not a type of the Graph metadata")


def parse_csdl(data: bytes) -> Model:
    """The entity, complex and enum types of an EDMX document, with alias-qualified names resolved."""
    root = etree.fromstring(data, parser=etree.XMLParser(huge_tree=True, remove_comments=True))
    schemas = root.iter(f"{_EDM}Schema")
    aliases: dict[str, str] = {}
    collected = []
    for schema in schemas:
        namespace = schema.get("Namespace")
        if schema.get("Alias"):
            aliases[schema.get("Alias")] = namespace
        collected.append((namespace, schema))

    def qualify(type_name: str) -> str:
        prefix, _, local = type_name.rpartition(".")
        return f"{aliases.get(prefix, prefix)}.{local}"

    structured: dict[str, StructuredType] = {}
    enums: dict[str, EnumType] = {}
    derived: dict[str, list[str]] = {}
    wanted = (f"{_EDM}EnumType", f"{_EDM}EntityType", f"{_EDM}ComplexType")
    for namespace, schema in collected:
        # Only the types: lxml then makes no Python objects for the thousands of annotations and actions.
        for element in schema.iterchildren(*wanted):
            tag = element.tag
            if tag == f"{_EDM}EnumType":
                name = f"{namespace}.{element.get('Name')}"
                members = tuple(m.get("Name") for m in element.iterchildren(f"{_EDM}Member"))
                enums[name] = EnumType(name, members, element.get("IsFlags") == "true")
            else:
                name = f"{namespace}.{element.get('Name')}"
                base = qualify(element.get("BaseType")) if element.get("BaseType") else None
                props = []
                for prop in element.iterchildren(f"{_EDM}Property", f"{_EDM}NavigationProperty"):
                    declared = prop.get("Type")
                    collection = declared.startswith("Collection(")
                    if collection:
                        declared = declared[len("Collection(") : -1]
                    # OData: Nullable defaults to true, also for navigation properties.
                    props.append(
                        Property(prop.get("Name"), qualify(declared), collection, prop.get("Nullable") != "false")
                    )
                structured[name] = StructuredType(
                    name,
                    base,
                    element.get("Abstract") == "true",
                    element.get("OpenType") == "true",
                    tuple(props),
                )
                if base:
                    derived.setdefault(base, []).append(name)
    return Model(structured, enums, {base: tuple(names) for base, names in derived.items()})


@dataclass(frozen=True)
class GraphSchema:
    """Graph's types as JSON Schema, with one compiled validator per requested type."""

    model: Model
    source: Path
    _validators: dict[tuple[str, bool], jsonschema.protocols.Validator] = field(
        default_factory=dict, repr=False, compare=False
    )
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def check(self, type_name: str, body: object, *, request: bool = True, partial: bool = False) -> list[str]:
        """The problems of ``body`` as a value of ``type_name``, each naming its JSON path; [] if valid.

        ``type_name`` is a qualified type ("microsoft.graph.event") or a page of them
        ("Collection(microsoft.graph.event)": ``value`` plus control information such as
        ``@odata.deltaLink``).

        ``request``: a body a client sends (enum members match in any case, as the service takes them)
        rather than one the service answers (members exactly as declared). Read-only properties are
        accepted in requests too: the CSDL does not say which they are (the API reference does), so that
        is left to the server. ``partial`` (a PATCH body) changes nothing: the CSDL requires no property,
        so a partial body is checked like a whole one; callers say it so that a rule can be added here.
        """
        del partial  # see the docstring: the metadata gives nothing that tells a PATCH body apart
        validator = self._validator(type_name, request)
        return sorted({problem for error in validator.iter_errors(body) for problem in _problems(error)})

    def json_schema(self, type_name: str, *, request: bool = True) -> dict[str, Any]:
        """The Draft 2020-12 schema that ``check`` applies for ``type_name``."""
        return _derive(self.model, type_name, request)

    def _validator(self, type_name: str, request: bool) -> jsonschema.protocols.Validator:
        key = (type_name, request)
        validator = self._validators.get(key)
        if validator is None:
            with self._lock:
                validator = self._validators.get(key)
                if validator is None:
                    validator = jsonschema.Draft202012Validator(self.json_schema(type_name, request=request))
                    self._validators[key] = validator
        return validator


def schema_path() -> Path:
    """The CSDL file: ``SYNCD_GRAPH_SCHEMA`` (a file, or a folder holding one), else the bundled copy."""
    configured = os.environ.get("SYNCD_GRAPH_SCHEMA")
    if not configured:
        return _BUNDLED
    path = Path(configured)
    if path.is_dir():
        found = sorted(path.glob("*.csdl")) + sorted(path.glob("*.csdl.gz"))
        if len(found) != 1:
            raise FileNotFoundError(f"SYNCD_GRAPH_SCHEMA={configured}: expected one .csdl or .csdl.gz, found {found}")
        return found[0]
    if not path.is_file():
        raise FileNotFoundError(f"SYNCD_GRAPH_SCHEMA={configured}: no such file")
    return path


def load_schema() -> GraphSchema:
    """The schema from ``schema_path()``, parsed once per process and path (the CSDL is 3.4 MB)."""
    return _load(schema_path().resolve())


@lru_cache(maxsize=8)
def _load(path: Path) -> GraphSchema:
    data = path.read_bytes()
    if path.suffix == ".gz":
        data = gzip.decompress(data)
    return GraphSchema(parse_csdl(data), path)


def _derive(model: Model, type_name: str, request: bool) -> dict[str, Any]:
    inner = type_name.removeprefix("Collection(").removesuffix(")") if type_name.startswith("Collection(") else None
    root = model.qualified(inner or type_name)
    if root not in model.structured:
        raise KeyError(f"{root!r} is not an entity or complex type")
    defs: dict[str, Any] = {}
    for name in _closure(model, root):
        if name in model.structured:
            defs.update(_structured_schemas(model, name, request))
    top: dict[str, Any] = {"$ref": _DEFS + root, "type": "object"}
    if inner:
        top = {
            "type": "object",
            "properties": {"value": {"type": "array", "items": top}},
            "patternProperties": _CONTROL,
            "additionalProperties": False,
            "title": f"a page of {root}",
        }
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **top, "$defs": defs}


def _closure(model: Model, root: str) -> list[str]:
    """``root`` and every type a value of it may hold: property types and their derived types."""
    seen: dict[str, None] = {}
    todo = [root]
    while todo:
        name = todo.pop()
        if name in seen or name.startswith("Edm."):
            continue
        if name not in model.structured and name not in model.enums:
            raise KeyError(f"{name!r} is not a type of the Graph metadata")
        seen[name] = None
        if name in model.structured:
            todo += [p.type for p in model.properties(name)]
            todo += model.descendants(name)
    return list(seen)


def _enum_schema(enum: EnumType, request: bool, nullable: bool) -> dict[str, Any]:
    title = f"a member of {enum.name} ({', '.join(enum.members)})"
    if not enum.flags and not request:
        return {"enum": [*enum.members, *([None] if nullable else [])], "title": title}
    member = "|".join(re.escape(m) for m in enum.members)
    # OData writes a flags value as its members separated by commas.
    listed = rf"({member})(, ?({member}))*" if enum.flags else f"({member})"
    return {
        "type": ["string", "null"] if nullable else "string",
        "pattern": ("(?i)" if request else "") + f"^{listed}$",
        "title": title,
    }


def _structured_schemas(model: Model, name: str, request: bool) -> dict[str, Any]:
    """Two defs: ``name`` picks the type ``@odata.type`` names, ``name!`` checks the type itself.

    Both accept null; a reference to a property that is not nullable adds ``type: object``. A type that
    has no derived types needs no choice: ``name`` is then the check itself.
    Primitives and enums are written out where used, not referenced: a ``$ref`` costs jsonschema a
    lookup on every use, and an event has dozens of them.
    """
    choices = [name, *model.descendants(name)]
    spelled = {"enum": [form for choice in choices for form in (f"#{choice}", choice)]}
    properties: dict[str, Any] = {"@odata.type": True, "@removed": _REMOVED}
    for prop in model.properties(name):
        properties[prop.name] = _value_schema(model, name, prop, request)
    concrete = {
        "type": ["object", "null"],
        "title": name,
        "properties": properties,
        "patternProperties": _CONTROL,
        "additionalProperties": model.structured[name].open and name in _OPEN,
    }
    if len(choices) == 1:
        properties["@odata.type"] = {**spelled, "title": name}
        return {name: concrete}
    dispatch: dict[str, Any] = {"$ref": f"{_DEFS}{name}!"}
    for choice in reversed(choices[1:]):
        dispatch = {
            "if": {
                "type": "object",
                "required": ["@odata.type"],
                "properties": {"@odata.type": {"enum": [f"#{choice}", choice]}},
            },
            "then": {"$ref": _DEFS + (f"{choice}!" if model.derived.get(choice) else choice)},
            "else": dispatch,
        }
    chooser = {"properties": {"@odata.type": {**spelled, "title": f"{name} or a type derived from it"}}, **dispatch}
    return {name: chooser, f"{name}!": concrete}


def _value_schema(model: Model, owner: str, prop: Property, request: bool) -> dict[str, Any]:
    target = _REFINED.get((owner, prop.name), prop.type)
    one: dict[str, Any]
    if target in _PRIMITIVES or target in _REFINEMENTS:
        json_type, keywords, title = {**_PRIMITIVES, **_REFINEMENTS}[target]
        one = {"type": [json_type, "null"] if prop.nullable else json_type, **keywords, "title": title}
    elif target in model.enums:
        one = _enum_schema(model.enums[target], request, prop.nullable)
    else:
        one = {"$ref": _DEFS + target}
        if not prop.nullable:
            one["type"] = "object"
    if prop.collection:
        return {"type": "array", "items": one}
    return one


def _problems(error: jsonschema.ValidationError) -> Iterator[str]:
    path = _json_path(error.absolute_path)
    schema = error.schema if isinstance(error.schema, dict) else {}
    title = schema.get("title")
    instance = error.instance
    if error.validator == "additionalProperties":
        declared = set(schema.get("properties", ()))
        patterns = [re.compile(p) for p in schema.get("patternProperties", ())]
        for key in instance:
            if key not in declared and not any(p.search(key) for p in patterns):
                yield f"{_json_path([*error.absolute_path, key])}: {title} declares no property {key!r}"
    elif error.validator in ("type", "enum") and instance is None:
        yield f"{path}: null is not allowed here (Nullable=false)"
    elif error.validator in ("type", "enum", "pattern", "minimum", "maximum") and title:
        yield f"{path}: {_show(instance)} is not {title}"
    elif error.validator == "type":
        yield f"{path}: {_show(instance)} is not of JSON type {' or '.join(_listed(error.validator_value))}"
    else:
        yield f"{path}: {error.message}"


def _listed(value: object) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def _json_path(parts: Iterable[str | int]) -> str:
    return "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts)


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
