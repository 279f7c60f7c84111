"""FindItem Restriction: the equality and boolean search expressions of types.xsd (SearchExpression).

Exchange evaluates a restriction against each item's properties; this server does the same for
IsEqualTo, IsNotEqualTo, Exists, And, Or and Not, over FieldURI (the item's own elements) and
ExtendedFieldURI paths, comparing values as text. Any other expression is refused loudly, so a test
never passes on a filter that was silently ignored.
"""

from __future__ import annotations

from .faults import not_implemented
from .store import StoredItem, prop_key
from .xmlns import Element, local, t


def matches(item: StoredItem, expression: Element) -> bool:
    name = local(expression)
    if name == "And":
        return all(matches(item, e) for e in expression)
    if name == "Or":
        return any(matches(item, e) for e in expression)
    if name == "Not":
        return not matches(item, expression[0])
    if name == "Exists":
        return _value(item, expression[0]) is not None
    if name in ("IsEqualTo", "IsNotEqualTo"):
        path, operand = expression[0], expression.find(t("FieldURIOrConstant"))[0]
        if local(operand) == "Constant":
            wanted = operand.get("Value")
        else:
            wanted = _value(item, operand)
        equal = _value(item, path) == wanted
        return equal if name == "IsEqualTo" else not equal
    raise not_implemented(f"Restriction with {name}")


def _value(item: StoredItem, path: Element) -> str | None:
    kind = local(path)
    if kind == "ExtendedFieldURI":
        prop = item.extended.get(prop_key(path))
        return None if prop is None else prop.findtext(t("Value"))
    if kind == "FieldURI":
        return item.text(path.get("FieldURI").split(":")[-1])
    raise not_implemented(f"Restriction on {kind}")
