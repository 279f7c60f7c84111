"""Response envelopes shared by the operations."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

from ..faults import ItemError
from ..xmlns import Element, m, new, sub

X = TypeVar("X")


def response(operation: str) -> tuple[Element, Element]:
    """m:{operation}Response with its m:ResponseMessages."""
    root = new(m(f"{operation}Response"))
    return root, sub(root, m("ResponseMessages"))


def success(messages: Element, operation: str) -> Element:
    msg = sub(messages, m(f"{operation}ResponseMessage"), ResponseClass="Success")
    sub(msg, m("ResponseCode"), "NoError")
    return msg


def error(messages: Element, operation: str, err: ItemError) -> Element:
    msg = sub(messages, m(f"{operation}ResponseMessage"), ResponseClass="Error")
    sub(msg, m("MessageText"), err.text)
    sub(msg, m("ResponseCode"), err.code)
    sub(msg, m("DescriptiveLinkKey"), "0")
    return msg


def each(
    messages: Element,
    operation: str,
    inputs: Iterable[X],
    handle: Callable[[Element, X], None],
    container: str | None = None,
) -> None:
    """One response message per input, in order; an ItemError fails only its own message.

    `handle(message, input)` fills a success message; `container` (e.g. "Items") is the element
    Exchange puts in every message of this operation, empty on errors.
    """
    for value in inputs:
        # Handlers write into a scratch element, kept only if the whole input succeeded.
        scratch = new(m("scratch"))
        try:
            handle(scratch, value)
        except ItemError as err:
            msg = error(messages, operation, err)
            if container:
                sub(msg, m(container))
            continue
        success(messages, operation).extend(list(scratch))


def children(elem: Element | None) -> Iterator[Element]:
    return iter(elem) if elem is not None else iter(())
