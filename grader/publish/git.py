"""`grader publish --to git`: FEEDBACK.md on a branch of each student's own repository.

The feedback (the student view as Markdown, as in ``feedback/<id>.md``) is committed as
``FEEDBACK.md`` on one branch (``[lms.git] branch``, default ``feedback``) and pushed to
the address the grader reads the student's code from. Nothing else is touched:

* commits are made with git's plumbing in a bare scratch repository of the grader's own
  (``.grader/feedback-git``), never in the student's repository or the grader's mirrors;
* the new commit's parent is the branch as the remote has it now (files a student keeps
  there stay), and the push is a plain fast-forward of that one ref, never forced;
* when the remote's ``FEEDBACK.md`` already holds this text, nothing is pushed.

A repository that cannot take a push (a bundle, a plain folder, a missing path, a refusing
remote) is that student's ``failed`` line; the others still go out. Each push is recorded
in the ledger before it starts; a run killed mid-push is settled by reading the branch.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from grader.errors import LmsError, SourceError
from grader.folders import plain_folder
from grader.publish.bulk import PublishJob
from grader.publish.ledger import Ledger
from grader.publish.plan import grade_value, text_sha256
from grader.publish.results import LineResult, PublishLine
from grader.reports.student_view import StudentView
from grader.roster import is_remote, repo_for
from grader.sources import git_environment, redact_url

FEEDBACK_FILE = "FEEDBACK.md"
SCRATCH_DIR = "feedback-git"
FETCHED_REF = "refs/grader/feedback-tip"  # in the scratch repository only
GIT_TIMEOUT = 120.0  # seconds for one git call (a push over the network included)
AUTHOR = {
    "GIT_AUTHOR_NAME": "grader",
    "GIT_AUTHOR_EMAIL": "grader@localhost",
    "GIT_COMMITTER_NAME": "grader",
    "GIT_COMMITTER_EMAIL": "grader@localhost",
}
_CONFIG = ("-c", "gc.auto=0", "-c", "maintenance.auto=false", "-c", "core.hooksPath=/dev/null")


@dataclass(frozen=True, kw_only=True)
class GitJob(PublishJob):
    """One assignment's feedback for the students' repositories (target "git <branch>")."""

    course_root: Path
    state_dir: Path
    repo_template: str
    branch: str


def push_problem(repo: str) -> str | None:
    """Why the grader cannot push to ``repo`` (a bundle, a plain folder...), or None."""
    if is_remote(repo):
        return None
    path = Path(repo)
    if path.is_file():
        return (
            f"{path.name} is a git bundle, which cannot be pushed to: give the student's "
            "repository URL or path (roster column repo, or the assignment's repo template)"
        )
    if not path.exists():
        return f"{path} does not exist"
    if plain_folder(repo) is not None:
        return f"{path} is a plain folder, not a git repository"
    return None


class GitPublisher:
    """Runs one ``GitJob``; each student is one small, independent push."""

    def __init__(
        self, job: GitJob, ledger: Ledger, *, environ: Mapping[str, str] = os.environ
    ) -> None:
        self.job = job
        self.ledger = ledger
        self.scratch = job.state_dir / SCRATCH_DIR
        self.settled = 0  # rows an interrupted run left, settled by this one
        self.env = {**git_environment(environ), **AUTHOR}

    def run(self) -> tuple[list[PublishLine], int]:
        if not (self.scratch / "HEAD").is_file():
            self.scratch.mkdir(parents=True, exist_ok=True)
            self._git("init", "--quiet", "--bare", "--template=", str(self.scratch), bare=False)
        last = self.ledger.last_sent(self.job.target, self.job.assignment)
        pending: dict[str, list[int]] = {}
        for row in self.ledger.pending(self.job.target, self.job.assignment):
            pending.setdefault(row.student_id, []).append(row.id)
        lines = []
        for view in self.job.views:
            student_id = view.student.student_id
            old = last[student_id].value if student_id in last else None
            new = "" if self.job.feedback_only else (grade_value(view) or "")
            open_rows = pending.get(student_id, [])  # a dry run settles them in a rehearsal
            result, detail = self._one(view, old, open_rows)
            lines.append(PublishLine(student_id, view.student.name, old or "", new, result, detail))
        return lines, self.settled

    def _one(
        self, view: StudentView, old: str | None, open_rows: Sequence[int]
    ) -> tuple[LineResult, str]:
        value = grade_value(view)
        if view.student.student_id not in self.job.feedback or (
            value is None and not self.job.feedback_only
        ):
            return "not graded", view.reason
        try:
            repo = repo_for(view.student, self.job.repo_template, base=self.job.course_root)
        except SourceError as exc:
            return "failed", exc.detail
        problem = push_problem(repo)
        if problem:
            return "failed", problem
        text = self.job.feedback[view.student.student_id]
        digest = text_sha256(text)
        try:
            head = self._remote_head(repo)
            current = self._feedback_at(repo, head) if head else None
        except LmsError as exc:
            return "failed", str(exc)
        self._settle(open_rows, current)
        if current is not None and text_sha256(current) == digest:
            return "unchanged", ""
        why = _why(old, value, self.job.feedback_only)
        if self.job.dry_run:
            return "would send", why
        row = self.ledger.begin(
            self.job.target,
            self.job.assignment,
            view.student.student_id,
            recipient=redact_url(repo),
            value=None if self.job.feedback_only else value,
            comment_sha256=digest,
        )
        try:
            commit = self._commit(head, text, f"{self.job.assignment}: {why}")
            # a fast-forward of this one ref (the parent is the remote's tip), never forced
            self._git("push", "--quiet", "--no-verify", "--", repo, f"{commit}:{self._ref}")
        except LmsError as exc:
            self.ledger.failed([row], str(exc))
            return "failed", str(exc)
        self.ledger.sent([row], f"pushed {commit[:12]}")
        return "sent", why

    @property
    def _ref(self) -> str:
        return f"refs/heads/{self.job.branch}"

    def _settle(self, open_rows: Sequence[int], current: str | None) -> None:
        """Rows a killed run left: sent if the branch holds their text, else failed."""
        self.settled += len(open_rows)
        for row_id in open_rows:
            row = self.ledger.get(row_id)
            if current is not None and text_sha256(current) == row.comment_sha256:
                self.ledger.sent([row], "found on the branch after an interrupted run")
            else:
                self.ledger.failed([row], "not on the branch after an interrupted run")

    # git --------------------------------------------------------------------------------
    def _remote_head(self, repo: str) -> str | None:
        out = self._git("ls-remote", "--", repo, self._ref, bare=False)
        for line in out.splitlines():
            sha, _, ref = line.partition("\t")
            if ref == self._ref:
                return sha
        return None

    def _feedback_at(self, repo: str, head: str) -> str | None:
        """Fetch the branch's tip into the scratch repository; its FEEDBACK.md, if any."""
        # by name (a remote may refuse a bare sha); a push since ls-remote is refused later
        fetched = f"+{self._ref}:{FETCHED_REF}"
        self._git("fetch", "--quiet", "--no-tags", "--no-write-fetch-head", "--", repo, fetched)
        try:
            return self._git("cat-file", "blob", f"{head}:{FEEDBACK_FILE}")
        except LmsError:
            return None  # no FEEDBACK.md on the branch

    def _commit(self, parent: str | None, text: str, message: str) -> str:
        blob = self._git("hash-object", "-w", "--stdin", stdin=text).strip()
        entries = [f"100644 blob {blob}\t{FEEDBACK_FILE}"]
        if parent:
            listing = self._git("ls-tree", "-z", parent)
            entries += [
                e for e in listing.split("\0") if e and not e.endswith(f"\t{FEEDBACK_FILE}")
            ]
        tree = self._git("mktree", "-z", stdin="\0".join(entries) + "\0").strip()
        parents = ["-p", parent] if parent else []
        return self._git("commit-tree", tree, *parents, "-m", message).strip()

    def _git(self, *args: str, stdin: str | None = None, bare: bool = True) -> str:
        where = ["--git-dir", str(self.scratch)] if bare else []
        command = ["git", *_CONFIG, *where, *args]
        try:
            done = subprocess.run(
                command,
                input=stdin,
                capture_output=True,
                text=True,
                env=self.env,
                timeout=GIT_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise LmsError(f"git {args[0]} took longer than {GIT_TIMEOUT:g} s", lms="git") from None
        if done.returncode != 0:
            lines = [ln.strip() for ln in done.stderr.splitlines() if ln.strip()]
            message = "; ".join(
                ln.removeprefix("fatal: ").removeprefix("error: ") for ln in lines[-2:]
            )
            raise LmsError(f"git {args[0]}: {redact_url(message) or 'failed'}", lms="git")
        return done.stdout


def _why(old: str | None, value: str | None, feedback_only: bool) -> str:
    if feedback_only or value is None:
        return "feedback"
    if old is None:
        return "new feedback"
    return f"grade {old} -> {value}" if old != value else "feedback changed"
