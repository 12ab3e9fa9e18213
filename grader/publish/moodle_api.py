"""Moodle's web services (REST protocol), the functions `grader publish --to moodle` calls.

Every call is ``POST <site>/webservice/rest/server.php`` with ``wsfunction``,
``moodlewsrestformat=json`` and the token as the form field ``wstoken`` (in the body,
never the URL, so no access log or httpx log line holds it). Moodle answers errors with
HTTP 200 and ``{"exception", "errorcode", "message"}``: ``invalidtoken`` and
``accessexception`` mean the token is refused (exit 3); the rest name the function.

``mod_assign_save_grades`` overwrites a student's grade and feedback comment (Moodle
keeps one feedback text per grade, in its history), so a retried or repeated save never
doubles anything: writes are retried like reads (dropped connections, 5xx, 429).

A feedback file (``[lms.moodle] attach_feedback``) goes as Moodle documents it for web
service clients: a multipart ``POST <site>/webservice/upload.php`` with the token as the
form field ``token`` puts it in a new draft area of the token's user (``itemid`` 0 asks
for a new one) and answers the draft's ``itemid``; the save then names that draft as the
file feedback plugin's ``plugindata[files_filemanager]``, and Moodle replaces the
student's feedback files with the draft's. A draft nobody names is cleaned up by Moodle,
so an upload is retried like a read. The service must allow file uploads.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from grader.api.retry import RetryPolicy
from grader.errors import LmsError, LmsThrottledError, LmsUnauthorizedError
from grader.publish.lms_http import LmsHttp, LmsHttpSettings

LMS = "Moodle"
ENDPOINT = "/webservice/rest/server.php"
UPLOAD = "/webservice/upload.php"
FORMAT_MARKDOWN = "4"  # Moodle's FORMAT_MARKDOWN for the feedback comment
LOOKUP_CHUNK = 100  # values per core_user_get_users_by_field call
PUBLISH_FUNCTIONS = (
    "core_user_get_users_by_field",
    "mod_assign_get_grades",
    "mod_assign_save_grades",
)
"""What the token's web service must offer for `grader publish --to moodle`."""
REFUSED_TOKEN = ("invalidtoken", "accessexception")
RETRY_POLICY = RetryPolicy(max_attempts=6, backoff_base=1.0, backoff_cap=30.0, deadline=300.0)


@dataclass(frozen=True)
class MoodleUser:
    id: str
    email: str
    idnumber: str
    username: str


@dataclass(frozen=True)
class MoodleGrade:
    """One student's grade and feedback text for ``mod_assign_save_grades``."""

    user_id: str
    grade: str
    feedback: str
    draft: str | None = None  # the draft area (upload_draft's itemid) of the feedback files


@dataclass(frozen=True)
class SiteInfo:
    """``core_webservice_get_site_info``: the site, and what the token's service allows."""

    name: str
    functions: frozenset[str]
    uploads: bool  # the service's "Can upload files" (``uploadfiles``)


def moodle_settings(base_url: str, token: str) -> LmsHttpSettings:
    """The Moodle site at ``base_url`` with its rate and retry defaults."""
    return LmsHttpSettings(
        LMS, base_url.rstrip("/"), token, requests_per_second=10.0, timeout=60.0, retry=RETRY_POLICY
    )


class MoodleClient(LmsHttp):
    """Async access to one Moodle site's web services for one token."""

    async def users_by_field(self, field_name: str, values: Sequence[str]) -> dict[str, MoodleUser]:
        """``core_user_get_users_by_field``: the users found, by the value asked for."""
        found: dict[str, MoodleUser] = {}
        for start in range(0, len(values), LOOKUP_CHUNK):
            chunk = values[start : start + LOOKUP_CHUNK]
            form = {"field": field_name} | {f"values[{i}]": v for i, v in enumerate(chunk)}
            body = await self.call("core_user_get_users_by_field", form)
            for item in body if isinstance(body, list) else []:
                user = MoodleUser(
                    id=str(item.get("id")),
                    email=str(item.get("email") or ""),
                    idnumber=str(item.get("idnumber") or ""),
                    username=str(item.get("username") or ""),
                )
                key = {"email": user.email, "idnumber": user.idnumber}.get(field_name, user.id)
                for value in chunk:  # Moodle compares e-mail addresses case-insensitively
                    if value.lower() == key.lower():
                        found[value] = user
        return found

    async def site_info(self) -> SiteInfo:
        """``core_webservice_get_site_info``: the site's name, the functions the token's
        service offers and whether it takes file uploads."""
        body = await self.call("core_webservice_get_site_info", {})
        body = body if isinstance(body, dict) else {}
        functions = frozenset(
            str(f.get("name")) for f in body.get("functions", []) if isinstance(f, dict)
        )
        uploads = str(body.get("uploadfiles", "0")) not in ("0", "", "False", "false")
        return SiteInfo(str(body.get("sitename") or ""), functions, uploads)

    async def assignment_ids(self) -> dict[str, str]:
        """``mod_assign_get_assignments`` (no course given: every course the token's user
        is in): each assign instance id with its name."""
        body = await self.call("mod_assign_get_assignments", {})
        courses = body.get("courses", []) if isinstance(body, dict) else []
        return {
            str(a.get("id")): str(a.get("name") or "")
            for course in courses
            if isinstance(course, dict)
            for a in course.get("assignments", [])
            if isinstance(a, dict)
        }

    async def grades(self, assignment_id: str) -> dict[str, str]:
        """``mod_assign_get_grades``: the current grade of each user who has one."""
        body = await self.call("mod_assign_get_grades", {"assignmentids[0]": assignment_id})
        grades: dict[str, str] = {}
        assignments = body.get("assignments", []) if isinstance(body, dict) else []
        for assignment in assignments:
            for item in assignment.get("grades", []):
                value = str(item.get("grade", "")).strip()
                if value and not value.startswith("-"):
                    grades[str(item.get("userid"))] = value
        return grades

    async def save_grades(self, assignment_id: str, grades: Sequence[MoodleGrade]) -> None:
        """``mod_assign_save_grades``: grades and feedback comments, many students at once."""
        form = {"assignmentid": assignment_id, "applytoall": "0"}
        for i, g in enumerate(grades):
            prefix = f"grades[{i}]"
            form |= {
                f"{prefix}[userid]": g.user_id,
                f"{prefix}[grade]": g.grade,
                f"{prefix}[attemptnumber]": "-1",
                f"{prefix}[addattempt]": "0",
                f"{prefix}[workflowstate]": "",
                f"{prefix}[plugindata][assignfeedbackcomments_editor][text]": g.feedback,
                f"{prefix}[plugindata][assignfeedbackcomments_editor][format]": FORMAT_MARKDOWN,
            }
            if g.draft is not None:
                form[f"{prefix}[plugindata][files_filemanager]"] = g.draft
        await self.call("mod_assign_save_grades", form)

    async def upload_draft(self, name: str, content: bytes, content_type: str) -> str:
        """``webservice/upload.php``: one file into a new draft area; the area's itemid."""
        form = {"token": self.settings.token, "filearea": "draft", "itemid": "0", "filepath": "/"}
        return await self.send(
            "POST",
            UPLOAD,
            self._check_upload,
            where=f"the upload of {name}",
            idempotent=True,  # an unused draft is Moodle's to clean up
            data=form,
            files={"file_1": (name, content, content_type)},
        )

    async def call(self, function: str, form: Mapping[str, str]) -> Any:
        """One web service function, retried on transient faults; its decoded answer.

        Every call is retried like a read: a save overwrites, so it cannot double.
        """
        data = {
            "wstoken": self.settings.token,
            "wsfunction": function,
            "moodlewsrestformat": "json",
            **form,
        }
        return await self.send(
            "POST", ENDPOINT, self._check, where=function, idempotent=True, data=data
        )

    async def _check(self, response: httpx.Response, function: str) -> Any:
        if response.status_code == 429:
            raise LmsThrottledError(f"{LMS}: {function}: throttled", lms=LMS)
        if not response.is_success:
            raise LmsError(
                f"{LMS}: {function}: HTTP {response.status_code}",
                lms=LMS,
                http_status=response.status_code,
            )
        try:
            body = response.json()
        except ValueError:
            raise LmsError(f"{LMS}: {function}: the answer is not JSON", lms=LMS) from None
        if isinstance(body, dict) and "exception" in body:
            raise self._exception(function, body)
        return body

    async def _check_upload(self, response: httpx.Response, where: str) -> str:
        """upload.php's answer: a list of the files stored, each with the draft's itemid;
        an error is a JSON object (``error`` or ``exception``, and ``errorcode``)."""
        body = await self._check(response, where)
        if isinstance(body, dict) and ("error" in body or "errorcode" in body):
            raise self._exception(where, body)
        items = body if isinstance(body, list) else []
        ids = {str(item.get("itemid")) for item in items if isinstance(item, dict)}
        ids.discard("None")
        if len(ids) != 1:
            raise LmsError(f"{LMS}: {where}: expected the draft area's itemid", lms=LMS)
        return ids.pop()

    def _exception(self, function: str, body: Mapping[str, Any]) -> LmsError:
        code = str(body.get("errorcode", ""))
        message = self.redaction.redact(str(body.get("message") or body.get("error") or ""))
        if code in REFUSED_TOKEN:
            why = f"{code}: {message}" if code == "accessexception" and message else code
            return LmsUnauthorizedError(f"{LMS} refused the web service token ({why})", lms=LMS)
        return LmsError(f"{LMS}: {function}: {message} ({code})", lms=LMS)
