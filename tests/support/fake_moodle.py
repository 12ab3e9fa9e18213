"""A small Moodle on loopback, as its web services documentation describes them.

``POST /webservice/rest/server.php`` with ``wstoken``, ``wsfunction`` and
``moodlewsrestformat=json``; errors are HTTP 200 with ``{exception, errorcode, message}``
(``invalidtoken`` for a wrong token). Functions: ``core_user_get_users_by_field``,
``mod_assign_get_grades``, ``mod_assign_save_grades`` (overwrites each user's grade and
feedback text, keeping a history), and for `grader doctor` ``core_webservice_get_site_info``
(the service's ``functions``) and ``mod_assign_get_assignments`` (``ASSIGNMENT``, in the
token user's course). ``fail_next(n)`` answers the next ``n`` calls 503;
``refuse_user(id)`` makes any save naming that user fail as a whole, as Moodle's
parameter validation does.

Files, as Moodle documents them for web service clients: ``POST /webservice/upload.php``
(multipart, the token as the field ``token``, ``filearea=draft``, ``itemid`` 0 for a new
draft area) stores the files in a draft area and answers a list of file records with
the draft's ``itemid``; errors are ``{error, errorcode}`` (``invalidtoken``; a service
without "Can upload files", ``uploads = False``, is ``accessexception``);
``refuse_uploads(text)`` answers an upload whose file contains ``text`` with a size error.
A save whose ``plugindata[files_filemanager]`` names a draft area replaces that user's
feedback files with the draft's (the file feedback plugin); ``site_info`` says
``uploadfiles``.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from tests.support.loopback import Answer, Request, serve_http

TOKEN = "moodle-ws-token-41bd"
ASSIGNMENT = "31"
ENDPOINT = "/webservice/rest/server.php"
UPLOAD = "/webservice/upload.php"


@dataclass
class Graded:
    grade: str
    feedback: str
    history: list[tuple[str, str]] = field(default_factory=list)
    files: list[tuple[str, bytes]] = field(default_factory=list)  # the feedback files now
    file_saves: int = 0  # saves that replaced the feedback files


@dataclass
class Draft:
    """A draft file area of the token's user: what upload.php stored there."""

    itemid: int
    files: list[tuple[str, bytes]] = field(default_factory=list)


class FakeMoodle:
    def __init__(self, users: list[dict[str, Any]]) -> None:
        self.users = users
        self.grades: dict[str, Graded] = {}
        self.calls: list[str] = []
        self.tokens: set[str] = set()
        self.lock = threading.Lock()
        self._fail = 0
        self._refused: set[str] = set()
        self.drafts: dict[int, Draft] = {}
        self.uploads = True  # the service's "Can upload files"
        self.upload_fields: list[list[str]] = []  # each upload's field names, in order
        self._refused_uploads: list[bytes] = []
        self.functions = [
            "core_webservice_get_site_info",
            "core_user_get_users_by_field",
            "mod_assign_get_assignments",
            "mod_assign_get_grades",
            "mod_assign_save_grades",
        ]
        self.url = ""

    def fail_next(self, count: int) -> None:
        with self.lock:
            self._fail = count

    def refuse_user(self, user_id: str) -> None:
        with self.lock:
            self._refused.add(user_id)

    def refuse_uploads(self, text: bytes) -> None:
        with self.lock:
            self._refused_uploads.append(text)

    def heal_uploads(self) -> None:
        with self.lock:
            self._refused_uploads.clear()

    def count(self, function: str) -> int:
        with self.lock:
            return self.calls.count(function)

    def route(self, request: Request) -> Answer:
        if (request.method, request.path) == ("POST", UPLOAD):
            with self.lock:
                return 200, self._upload(request), {}
        if (request.method, request.path) != ("POST", ENDPOINT):
            return 404, {"error": "not found"}, {}
        status, payload = self.handle(request.form)
        return status, payload, {}

    def handle(self, form: dict[str, str]) -> tuple[int, Any]:
        with self.lock:
            function = form.get("wsfunction", "")
            self.calls.append(function)
            self.tokens.add(form.get("wstoken", ""))
            if self._fail > 0:
                self._fail -= 1
                return 503, {"error": "unavailable"}
            if form.get("wstoken") != TOKEN:
                return 200, {
                    "exception": "moodle_exception",
                    "errorcode": "invalidtoken",
                    "message": "Invalid token - token not found",
                }
            if function == "core_webservice_get_site_info":
                functions = [{"name": f, "version": "2024100700"} for f in self.functions]
                return 200, {
                    "sitename": "Fake Moodle",
                    "username": "grader",
                    "functions": functions,
                    "uploadfiles": int(self.uploads),
                }
            if function == "mod_assign_get_assignments":
                assignment = {"id": int(ASSIGNMENT), "cmid": 77, "name": "Homework 1"}
                return 200, {"courses": [{"id": 3, "assignments": [assignment]}], "warnings": []}
            if function == "core_user_get_users_by_field":
                name = form["field"]
                values = {v.lower() for k, v in form.items() if k.startswith("values[")}
                return 200, [u for u in self.users if str(u.get(name, "")).lower() in values]
            if function == "mod_assign_get_grades":
                assert form["assignmentids[0]"] == ASSIGNMENT
                items = [{"userid": uid, "grade": g.grade} for uid, g in self.grades.items()]
                return 200, {"assignments": [{"assignmentid": ASSIGNMENT, "grades": items}]}
            if function == "mod_assign_save_grades":
                return 200, self._save(form)
            return 200, {"exception": "moodle_exception", "errorcode": "invalidrecord"}

    def _save(self, form: dict[str, str]) -> Any:
        assert form["assignmentid"] == ASSIGNMENT
        rows: dict[str, dict[str, str]] = {}
        for key, value in form.items():
            found = re.fullmatch(r"grades\[(\d+)\]\[(\w+)\](.*)", key)
            if found:
                rows.setdefault(found[1], {})[found[2] + found[3]] = value
        known = {str(u["id"]) for u in self.users}
        for row in rows.values():
            if row["userid"] in self._refused or row["userid"] not in known:
                return {
                    "exception": "invalid_parameter_exception",
                    "errorcode": "invalidparameter",
                    "message": f"Invalid parameter value detected (user {row['userid']})",
                }
        for row in rows.values():
            draft = row.get("plugindata[files_filemanager]")
            if draft is not None and int(draft) not in self.drafts:
                return {
                    "exception": "file_exception",
                    "errorcode": "storedfileproblem",
                    "message": f"no draft area {draft}",
                }
        for row in rows.values():
            text = row["plugindata[assignfeedbackcomments_editor][text]"]
            assert row["plugindata[assignfeedbackcomments_editor][format]"] == "4"
            graded = self.grades.setdefault(row["userid"], Graded("", ""))
            graded.grade, graded.feedback = row["grade"], text
            graded.history.append((row["grade"], text))
            draft = row.get("plugindata[files_filemanager]")
            if draft is not None:  # the draft area's files replace the feedback files
                graded.files = list(self.drafts[int(draft)].files)
                graded.file_saves += 1
        return None

    def _upload(self, request: Request) -> Any:
        fields = request.multipart()
        self.calls.append("upload.php")
        self.upload_fields.append([name for name, _ in fields])
        form = {name: value.decode() for name, value in fields if not name.startswith("file_")}
        files = [(name, value) for name, value in fields if name.startswith("file_")]
        self.tokens.add(form.get("token", ""))
        if form.get("token") != TOKEN:
            return {"error": "Invalid token - token not found", "errorcode": "invalidtoken"}
        if not self.uploads:
            return {
                "error": "Web service file upload must be enabled in external service settings",
                "errorcode": "accessexception",
            }
        if form.get("filearea", "draft") != "draft" or not files:
            return {"error": "error", "errorcode": "upload_error_no_file"}
        if any(text in content for text in self._refused_uploads for _, content in files):
            return {
                "error": "The uploaded file exceeds the maximum size",
                "errorcode": "upload_error_ini_size",
            }
        itemid = int(form.get("itemid", "0")) or 880413555 + len(self.drafts)
        draft = self.drafts.setdefault(itemid, Draft(itemid))
        names = _file_names(request)
        draft.files += [(names[name], content) for name, content in files]
        return [
            {
                "component": "user",
                "contextid": 567,
                "userid": "2",
                "filearea": "draft",
                "filename": names[name],
                "filepath": form.get("filepath", "/"),
                "itemid": itemid,
                "license": "allrightsreserved",
                "author": "grader",
                "source": "",
            }
            for name, _ in files
        ]


def _file_names(request: Request) -> dict[str, str]:
    """Each file field's file name (multipart's ``filename``)."""
    found = re.findall(rb'name="([^"]+)"; filename="([^"]*)"', request.body)
    return {name.decode(): filename.decode() for name, filename in found}


@contextmanager
def serve_moodle(moodle: FakeMoodle) -> Iterator[FakeMoodle]:
    with serve_http(moodle.route) as url:
        moodle.url = url
        yield moodle
