"""Microsoft To Do: lists, tasks, linked resources and open extensions."""

from __future__ import annotations

import copy
from typing import Any

from . import odata, render, times
from .context import Reply, Request, mailbox
from .errors import bad_request, item_not_found
from .events import extension_of, page, store_extension
from .routes import USER, route
from .store import Mailbox, Task, TodoList, new_change_key, new_id, now

TASK = "microsoft.graph.todoTask"
LINK = "microsoft.graph.linkedResource"
EXTENSION = "microsoft.graph.openTypeExtension"
_LISTS = USER + "/todo/lists"
_TASKS = _LISTS + r"/(?P<lid>[^/]+)/tasks"
_TASK = _TASKS + r"/(?P<tid>(?!delta$)[^/]+)"


def list_of(box: Mailbox, lid: str) -> TodoList:
    found = box.lists.get(lid)
    if found is None:
        raise item_not_found()
    return found


def task_of(box: Mailbox, lid: str, tid: str) -> Task:
    found = list_of(box, lid).tasks.get(tid)
    if found is None:
        raise item_not_found()
    return found


@route("GET", _LISTS)
def list_lists(request: Request, user: str) -> Reply:
    box = mailbox(request, user, "todo")
    return Reply(
        200,
        {"@odata.context": request.url(f"/$metadata#users('{user}')/todo/lists"),
         "value": [render.todo_list(t) for t in box.lists.values()]},
        entity="microsoft.graph.todoTaskList",
        collection=True,
    )


@route("POST", _LISTS)
def create_list(request: Request, user: str) -> Reply:
    box = mailbox(request, user, "todo")
    body = request.json_body("microsoft.graph.todoTaskList")
    if not body.get("displayName"):
        raise bad_request("A list needs a displayName.", "invalidRequest")
    created = request.graph.store.add_list(box, body["displayName"])
    return Reply(201, render.todo_list(created), entity="microsoft.graph.todoTaskList")


@route("GET", _LISTS + r"/(?P<lid>[^/]+)")
def get_list(request: Request, user: str, lid: str) -> Reply:
    box = mailbox(request, user, "todo")
    return Reply(200, render.todo_list(list_of(box, lid)), entity="microsoft.graph.todoTaskList")


def _render(request: Request, task: Task) -> dict[str, Any]:
    return render.task(
        task,
        zone=request.zone,
        select=odata.parse_select(request.query.get("$select"), render.TASK_PROPERTIES, TASK),
        expand=odata.parse_expand(request.query.get("$expand"), render.TASK_EXPANDS),
    )


@route("GET", _TASKS)
def list_tasks(request: Request, user: str, lid: str) -> Reply:
    box = mailbox(request, user, "todo")
    todo_list = list_of(box, lid)
    rows = [_render(request, t) for t in sorted(todo_list.tasks.values(), key=lambda t: t.seq)]
    return Reply(200, page(request, rows, f"/$metadata#users('{user}')/todo/lists('{lid}')/tasks"),
                 entity=TASK, collection=True, partial="$select" in request.query)


@route("GET", _TASK)
def get_task(request: Request, user: str, lid: str, tid: str) -> Reply:
    box = mailbox(request, user, "todo")
    return Reply(200, _render(request, task_of(box, lid, tid)), entity=TASK, partial="$select" in request.query)


def _writable(body: dict[str, Any]) -> dict[str, Any]:
    skip = render.TASK_SERVER_SET | {"linkedResources", "extensions", "checklistItems", "attachments",
                                     "attachmentSessions"}
    return {k: copy.deepcopy(v) for k, v in body.items() if k not in skip and "@" not in k}


def _check(data: dict[str, Any]) -> None:
    for name in ("dueDateTime", "startDateTime", "reminderDateTime", "completedDateTime"):
        if data.get(name) is not None:
            times.to_utc(data[name])
    if data.get("status") == "completed" and not data.get("completedDateTime"):
        data["completedDateTime"] = times.render(now(), "UTC")
    elif data.get("status") not in (None, "completed"):
        data.pop("completedDateTime", None)


def _link(body: dict[str, Any]) -> dict[str, Any]:
    link = {k: v for k, v in body.items() if not k.startswith("@") and k != "id"}
    link["id"] = new_id("AAMkLnk")
    return link


def _touch(request: Request, task: Task) -> None:
    task.etag = new_change_key()
    task.modified = now()
    task.seq = request.graph.store.next_seq()


@route("POST", _TASKS)
def create_task(request: Request, user: str, lid: str) -> Reply:
    box = mailbox(request, user, "todo")
    todo_list = list_of(box, lid)
    body = request.json_body(TASK)
    data = _writable(body)
    _check(data)
    store = request.graph.store
    stamp = now()
    task = Task(id=new_id("AAMkADTsk"), todo_list=todo_list, data=data, etag=new_change_key(), created=stamp,
                modified=stamp, seq=store.next_seq())
    for link in body.get("linkedResources") or []:
        made = _link(link)
        task.linked_resources[made["id"]] = made
    for ext in body.get("extensions") or []:
        store_extension(task.extensions, ext)
    todo_list.tasks[task.id] = task
    store.tasks[task.id] = task
    return Reply(201, _render(request, task), entity=TASK)


@route("PATCH", _TASK)
def update_task(request: Request, user: str, lid: str, tid: str) -> Reply:
    box = mailbox(request, user, "todo")
    task = task_of(box, lid, tid)
    request.check_if_match(task.etag)
    body = request.json_body(TASK, partial=True)
    data = {**task.data, **_writable(body)}
    data = {k: v for k, v in data.items() if v is not None}
    _check(data)
    task.data = data
    _touch(request, task)
    return Reply(200, _render(request, task), entity=TASK)


@route("DELETE", _TASK)
def delete_task(request: Request, user: str, lid: str, tid: str) -> Reply:
    box = mailbox(request, user, "todo")
    task = task_of(box, lid, tid)
    request.check_if_match(task.etag)
    del task.todo_list.tasks[task.id]
    request.graph.store.tasks.pop(task.id, None)
    return Reply(204)


# -- linked resources --------------------------------------------------------------------------------


@route("GET", _TASK + "/linkedResources")
def list_links(request: Request, user: str, lid: str, tid: str) -> Reply:
    box = mailbox(request, user, "todo")
    task = task_of(box, lid, tid)
    return Reply(200, {"value": list(task.linked_resources.values())}, entity=LINK, collection=True)


@route("POST", _TASK + "/linkedResources")
def create_link(request: Request, user: str, lid: str, tid: str) -> Reply:
    box = mailbox(request, user, "todo")
    task = task_of(box, lid, tid)
    made = _link(request.json_body(LINK))
    task.linked_resources[made["id"]] = made
    _touch(request, task)
    return Reply(201, made, entity=LINK)


def _link_of(task: Task, rid: str) -> dict[str, Any]:
    found = task.linked_resources.get(rid)
    if found is None:
        raise item_not_found()
    return found


@route("GET", _TASK + r"/linkedResources/(?P<rid>[^/]+)")
def get_link(request: Request, user: str, lid: str, tid: str, rid: str) -> Reply:
    box = mailbox(request, user, "todo")
    return Reply(200, _link_of(task_of(box, lid, tid), rid), entity=LINK)


@route("PATCH", _TASK + r"/linkedResources/(?P<rid>[^/]+)")
def update_link(request: Request, user: str, lid: str, tid: str, rid: str) -> Reply:
    box = mailbox(request, user, "todo")
    task = task_of(box, lid, tid)
    link = _link_of(task, rid)
    body = request.json_body(LINK, partial=True)
    link.update({k: v for k, v in body.items() if not k.startswith("@") and k != "id"})
    _touch(request, task)
    return Reply(200, link, entity=LINK)


@route("DELETE", _TASK + r"/linkedResources/(?P<rid>[^/]+)")
def delete_link(request: Request, user: str, lid: str, tid: str, rid: str) -> Reply:
    box = mailbox(request, user, "todo")
    task = task_of(box, lid, tid)
    _link_of(task, rid)
    del task.linked_resources[rid]
    _touch(request, task)
    return Reply(204)


# -- open extensions ---------------------------------------------------------------------------------


@route("GET", _TASK + "/extensions")
def list_task_extensions(request: Request, user: str, lid: str, tid: str) -> Reply:
    box = mailbox(request, user, "todo")
    task = task_of(box, lid, tid)
    return Reply(200, {"value": [render.extension(e) for e in task.extensions.values()]}, entity=EXTENSION,
                 collection=True)


@route("POST", _TASK + "/extensions")
def add_task_extension(request: Request, user: str, lid: str, tid: str) -> Reply:
    box = mailbox(request, user, "todo")
    task = task_of(box, lid, tid)
    value = store_extension(task.extensions, request.json_body(EXTENSION))
    _touch(request, task)
    return Reply(201, render.extension(value), entity=EXTENSION)


@route("GET", _TASK + r"/extensions/(?P<ext>[^/]+)")
def get_task_extension(request: Request, user: str, lid: str, tid: str, ext: str) -> Reply:
    box = mailbox(request, user, "todo")
    return Reply(200, render.extension(extension_of(task_of(box, lid, tid).extensions, ext)), entity=EXTENSION)


@route("PATCH", _TASK + r"/extensions/(?P<ext>[^/]+)")
def update_task_extension(request: Request, user: str, lid: str, tid: str, ext: str) -> Reply:
    box = mailbox(request, user, "todo")
    task = task_of(box, lid, tid)
    value = extension_of(task.extensions, ext)
    body = request.json_body(EXTENSION, partial=True)
    value.update({k: v for k, v in body.items() if not k.startswith("@") and k not in ("id", "extensionName")})
    _touch(request, task)
    return Reply(204)


@route("DELETE", _TASK + r"/extensions/(?P<ext>[^/]+)")
def delete_task_extension(request: Request, user: str, lid: str, tid: str, ext: str) -> Reply:
    box = mailbox(request, user, "todo")
    task = task_of(box, lid, tid)
    value = extension_of(task.extensions, ext)
    del task.extensions[value["extensionName"]]
    _touch(request, task)
    return Reply(204)
