"""The last step of every inbound mapping: what the CRM's rules refuse is this item's error.

A calendar may send anything (an id of 300 characters, a NUL in a title, a year-1 time east of
Greenwich); the mappings read it as well as they can, and this check makes sure that what they hand
the engine is exactly what the store accepts (:func:`syncd.store.rules.activity_problems`), so a pull
never stores an activity that the next pass cannot read back. Anything else is an
:class:`~syncd.errors.ItemError` naming the item and the field.
"""

from __future__ import annotations

from syncd.errors import ItemError
from syncd.model import Activity
from syncd.store.rules import activity_problems


def storable(activity: Activity, item: str) -> Activity:
    """``activity`` unchanged if the store accepts it; else an ItemError with every reason."""
    problems = activity_problems(activity)
    if problems:
        first = problems[0]
        reasons = "; ".join(str(p) for p in problems)
        raise ItemError(item, first.field or None, f"the CRM cannot keep it: {reasons}")
    return activity
