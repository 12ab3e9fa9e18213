"""Students' code at the deadline: bare git mirrors, bundles and local folders.

Every repository (URL, local repository or bundle file: a bundle is an ordinary fetch
source) gets a bare mirror under ``mirrors_dir``, in a folder named after a hash of its
address with credentials removed. The mirror is created once and fetched on later runs
(once per ``GitSources``, so two assignments reading one repository fetch it once); a
later run first asks the remote for the tip of the ref it walks (``git ls-remote``), and
when that tip has not moved it takes the history stored at the last walk
(``grader/histories.py``) without fetching. The
address is passed on each fetch and never written into the mirror, so a token in a URL
stays out of the disk; it is also removed from every message.

git runs in worker threads (``grader/gitprocess.py``) with a timeout each, no prompts
(terminal, askpass, ssh batch mode), no system or user configuration, no inherited
``GIT_*`` variables, and only the file, git, http(s) and ssh transports (``ext::`` would
run commands).

The commit graded is chosen by ``pick_commit_at`` (``grader/commits.py``, re-exported
here), a pure function: its docstring says how commits are ordered and what happens to
dates that go backwards. A plain folder that is not a git repository is read by
``grader/folders.py`` as one snapshot "commit".
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import shutil
import stat
from collections import Counter
from collections.abc import Awaitable, Mapping
from pathlib import Path

from grader.api.redact import redact
from grader.archive import WorkspaceFile, human_size
from grader.commits import Commit, CommitChoice, pick_commit_at, utc_from_timestamp
from grader.errors import ArchiveError, SourceError
from grader.folders import folder_digest, folder_files, plain_folder
from grader.gitprocess import GitProcess, GitTimeoutError
from grader.histories import advertised_tips, store_history, stored_history
from grader.roster import is_remote

__all__ = [
    "Commit",
    "CommitChoice",
    "GitSources",
    "git_environment",
    "pick_commit_at",
    "redact_url",
]

DEFAULT_FETCH_TIMEOUT = 300.0  # seconds for a clone or fetch over the network
DEFAULT_LOCAL_TIMEOUT = 60.0  # seconds for git calls that only read the mirror
DEFAULT_MAX_READ_BYTES = 256 * 2**20  # the most file content read from one commit
REMOTE_HEAD = "refs/grader/remote-head"  # what the remote's HEAD pointed at when fetched
ALLOWED_PROTOCOLS = "file:git:http:https:ssh"
_GIT_CONFIG = (
    "-c", "gc.auto=0",  # no background gc while students are being graded
    "-c", "maintenance.auto=false",
    "-c", "fetch.writeCommitGraph=false",
    "-c", "protocol.version=2",
    "-c", "http.lowSpeedLimit=1000",  # a stalled transfer fails in a minute, not at the timeout
    "-c", "http.lowSpeedTime=60",
)  # fmt: skip
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/\s]*@")
_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
_NO_REMOTE_HEAD = "couldn't find remote ref HEAD"
_LOG_FORMAT = "--format=%H%x1f%ct%x1f%s"
_PLAIN_BRANCH = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]*")  # no revision syntax (~ ^ : @)


# reading repositories ---------------------------------------------------------------------


class GitSources:
    """Reads students' repositories through bare mirrors kept under ``mirrors_dir``."""

    def __init__(
        self,
        mirrors_dir: Path,
        *,
        fetch_timeout: float = DEFAULT_FETCH_TIMEOUT,
        local_timeout: float = DEFAULT_LOCAL_TIMEOUT,
        max_read_bytes: int = DEFAULT_MAX_READ_BYTES,
        git: str = "git",
    ):
        self.mirrors_dir = mirrors_dir
        self.fetch_timeout = fetch_timeout
        self.local_timeout = local_timeout
        self.max_read_bytes = max_read_bytes
        self.git = git
        self._locks: dict[Path, asyncio.Lock] = {}
        self._synced: set[Path] = set()
        self._environment: dict[str, str] | None = None
        self.commands: Counter[str] = Counter()  # git commands run, by name ("fetch")
        # per address, for this instance (one run): what does not change within it
        self._mirrors: dict[str, Path] = {}
        self._folders: dict[str, Path | None] = {}
        self._addresses: set[str] = set()  # checked, and there

    def mirror_path(self, repo: str) -> Path:
        """The mirror folder of ``repo``: a readable stem and a hash of the clean address."""
        found = self._mirrors.get(repo)
        if found is None:
            clean = redact_url(repo)
            stem = re.sub(r"\.(git|bundle)$", "", clean.rstrip("/").rsplit("/", 1)[-1])
            stem = re.sub(r"[^A-Za-z0-9._-]+", "-", stem).strip(".-")[:40] or "repo"
            digest = hashlib.sha256(clean.encode()).hexdigest()[:16]
            found = self._mirrors[repo] = self.mirrors_dir / f"{stem}-{digest}"
        return found

    def _plain_folder(self, repo: str) -> Path | None:
        """``folders.plain_folder``, asked once per address in this run."""
        if repo not in self._folders:
            self._folders[repo] = plain_folder(repo)
        return self._folders[repo]

    def _check_address(self, repo: str) -> None:
        if repo not in self._addresses:
            _check_address(repo)  # raises when it is not one
            self._addresses.add(repo)

    async def history(self, repo: str, branch: str | None = None) -> list[Commit]:
        """The branch's first-parent commits, newest first (the default branch if None)."""
        folder = self._plain_folder(repo)
        if folder is not None:
            sha, time = await asyncio.to_thread(folder_digest, folder, self.max_read_bytes)
            return [Commit(sha, time, f"snapshot of {folder.name}", snapshot=True)]
        # the usual ref first, with no listing of refs: the branch asked for (a plain
        # name, never read as a revision), or the remote's HEAD
        usual = REMOTE_HEAD if branch is None else _plain_branch_ref(branch)
        unchanged = await self._unchanged_history(repo, usual)
        if unchanged is not None:
            return unchanged
        mirror = await self._sync(repo)
        log = ["--git-dir", str(mirror), "log", "--first-parent", "-z", _LOG_FORMAT]
        out = None
        if usual is not None:
            with contextlib.suppress(_GitError):
                out = await self._git(
                    [*log, usual, "--"], repo=str(mirror), seconds=self.local_timeout
                )
        walked_usual = out is not None
        if out is None:  # not there: the mirror's refs say which one to walk, or why none
            ref = await self._branch_ref(mirror, repo, branch)
            out = await self._try(
                self._git([*log, ref, "--"], repo=str(mirror), seconds=self.local_timeout)
            )
        try:
            commits = [_parse_log_record(r) for r in out.split(b"\0") if r.strip()]
        except ValueError as exc:
            raise SourceError(f"unreadable history ({exc})") from None
        if not commits:
            raise SourceError(f"{redact_url(repo)} has no commits")
        if usual is not None and walked_usual:
            store_history(mirror, usual, commits)
        return commits

    async def _unchanged_history(self, repo: str, ref: str | None) -> list[Commit] | None:
        """The stored history of ``ref`` when the remote still advertises the tip it had at
        its last walk: one ``ls-remote`` instead of a fetch and a log. None: fetch."""
        mirror = self.mirror_path(repo)
        if ref is None or mirror in self._synced or not (mirror / "HEAD").is_file():
            return None
        stored = stored_history(mirror, ref)
        if stored is None:
            return None
        self._check_address(repo)
        name = "HEAD" if ref == REMOTE_HEAD else ref
        try:
            listing = await self._git(
                ["ls-remote", "--", repo, name], repo=repo, seconds=self.fetch_timeout
            )
        except _GitError:
            return None  # the fetch says what is wrong, as it always did
        tip, commits = stored
        return commits if advertised_tips(listing).get(name) == tip else None

    async def files(self, repo: str, sha: str) -> list[WorkspaceFile]:
        """Every file of commit ``sha`` (paths, modes, symlink targets, contents)."""
        folder = self._plain_folder(repo)
        if folder is not None:
            found, files = await asyncio.to_thread(folder_files, folder, self.max_read_bytes)
            if found != sha:
                raise SourceError(
                    f"the folder {folder} changed while it was being graded; run again"
                )
            return files
        if not _SHA.fullmatch(sha):
            raise SourceError(f"not a commit id: {sha!r}")
        mirror = self.mirror_path(repo)
        # a commit once fetched never changes: one the mirror has needs no fetch
        if mirror not in self._synced and not await self._holds(mirror, repo, sha):
            mirror = await self._sync(repo)
        try:
            listing = await self._git(
                ["--git-dir", str(mirror), "ls-tree", "-r", "-l", "-z", "--full-tree", sha],
                repo=repo,
                seconds=self.local_timeout,
            )
        except _GitError as exc:
            raise SourceError(
                f"commit {sha[:7]} cannot be read from {redact_url(repo)} ({exc.message})"
            ) from None
        entries = [_parse_tree_entry(e) for e in listing.split(b"\0") if e]
        blobs = [e for e in entries if e[1] == "blob"]
        total = sum(size for _, _, _, size, _ in blobs)
        if total > self.max_read_bytes:
            raise ArchiveError(
                f"commit {sha[:7]} holds {human_size(total)} of files, more than the "
                f"{human_size(self.max_read_bytes)} the grader reads from one commit"
            )
        contents = await self._blobs(mirror, sorted({oid for _, _, oid, _, _ in blobs}))
        return [_workspace_file(e, contents) for e in blobs]

    # git plumbing ---------------------------------------------------------------------

    async def _sync(self, repo: str) -> Path:
        """Create (first time) and fetch the mirror of ``repo``, once per instance."""
        self._check_address(repo)
        mirror = self.mirror_path(repo)
        lock = self._locks.setdefault(mirror, asyncio.Lock())
        async with lock:
            if mirror in self._synced:
                return mirror
            fresh = not (mirror / "HEAD").is_file()  # new, or left half-made by a crash
            if fresh:
                _init_bare(mirror)
            try:
                await self._fetch(mirror, repo)
            except SourceError:
                if fresh:  # an address that never worked leaves no empty mirror behind
                    shutil.rmtree(mirror, ignore_errors=True)
                raise
            self._synced.add(mirror)
        return mirror

    async def _fetch(self, mirror: Path, repo: str) -> None:
        args = ["--git-dir", str(mirror), "fetch", "--quiet", "--no-tags", "--prune"]
        args += ["--no-write-fetch-head", "--", repo, "+refs/heads/*:refs/heads/*"]
        try:
            await self._git([*args, f"+HEAD:{REMOTE_HEAD}"], repo=repo, seconds=self.fetch_timeout)
        except _GitError as exc:
            if _NO_REMOTE_HEAD not in exc.stderr:
                raise SourceError(exc.message) from None
            # A remote (or bundle) without HEAD: take its branches; the default is guessed.
            await self._try(self._git(args, repo=repo, seconds=self.fetch_timeout))
            await self._try(self._read(mirror, "update-ref", "-d", REMOTE_HEAD))

    async def _branch_ref(self, mirror: Path, repo: str, branch: str | None) -> str:
        """The ref to walk: the branch asked for, else the remote's HEAD, else a guess."""
        refs = (await self._read(mirror, "for-each-ref", "--format=%(refname)")).decode().split()
        branches = sorted(
            r.removeprefix("refs/heads/") for r in refs if r.startswith("refs/heads/")
        )
        listed = ", ".join(branches) or "none"
        if not branches:
            raise SourceError(f"{redact_url(repo)} has no commits")
        if branch is not None:
            if branch in branches:
                return f"refs/heads/{branch}"
            raise SourceError(
                f"branch {branch!r} not found in {redact_url(repo)} (branches: {listed})"
            )
        if REMOTE_HEAD in refs:
            return REMOTE_HEAD
        for guess in branches if len(branches) == 1 else ["main", "master"]:
            if guess in branches:
                return f"refs/heads/{guess}"
        raise SourceError(
            f"{redact_url(repo)} has no default branch; "
            f"set the assignment's branch (branches: {listed})"
        )

    async def _holds(self, mirror: Path, repo: str, sha: str) -> bool:
        """Whether the mirror already has commit ``sha`` (then reading it needs no fetch)."""
        if not (mirror / "HEAD").is_file():
            return False
        check = ["--git-dir", str(mirror), "cat-file", "-e", f"{sha}^{{commit}}"]
        try:
            await self._git(check, repo=repo, seconds=self.local_timeout)
        except _GitError:
            return False
        return True

    async def _blobs(self, mirror: Path, oids: list[str]) -> dict[str, bytes]:
        if not oids:
            return {}
        out = await self._read(mirror, "cat-file", "--batch", stdin="\n".join(oids) + "\n")
        return _parse_batch(out)

    async def _read(self, mirror: Path, *args: str, stdin: str | None = None) -> bytes:
        """A git command on the mirror; its failure is a SourceError."""
        return await self._try(
            self._git(
                ["--git-dir", str(mirror), *args],
                repo=str(mirror),
                seconds=self.local_timeout,
                stdin=stdin.encode() if stdin is not None else None,
            )
        )

    @staticmethod
    async def _try(call: Awaitable[bytes]) -> bytes:
        try:
            return await call
        except _GitError as exc:
            raise SourceError(exc.message) from None

    async def _git(
        self, args: list[str], *, repo: str, seconds: float, stdin: bytes | None = None
    ) -> bytes:
        """Run git; raises _GitError (clean message) or SourceError on a timeout."""
        if self._environment is None:  # as the environment is at this instance's first call
            self._environment = git_environment(os.environ)
        name = args[2] if args[0] == "--git-dir" else args[0]
        self.commands[name] += 1
        command = GitProcess(
            [self.git, *_GIT_CONFIG, *args], env=self._environment, stdin=stdin, seconds=seconds
        )
        try:
            done = await command.run()
        except GitTimeoutError:
            raise SourceError(
                f"git {name} on {redact_url(repo)} took longer than {seconds:g} s"
            ) from None
        if done.returncode != 0:
            raise _GitError(
                _clean_stderr(done.stderr, repo), redact_url(done.stderr.decode("utf-8", "replace"))
            )
        return done.stdout


class _GitError(Exception):
    """A git command exited non-zero: git's words (``message`` in short), credentials removed.

    Never leaves this module: callers turn it into a ``SourceError``.
    """

    def __init__(self, message: str, stderr: str):
        self.message = message
        self.stderr = stderr
        super().__init__(message)


# helpers ----------------------------------------------------------------------------------


def redact_url(text: str) -> str:
    """``text`` with the user and password of every URL removed, and tokens masked."""
    return redact(_USERINFO.sub(r"\g<scheme>", text))


def git_environment(base: Mapping[str, str]) -> dict[str, str]:
    """The environment git runs in: no prompts, no configuration, no inherited GIT_*."""
    env = {k: v for k, v in base.items() if not k.startswith("GIT_") and k != "SSH_ASKPASS"}
    env.update(
        GIT_CONFIG_NOSYSTEM="1",
        GIT_CONFIG_GLOBAL=os.devnull,
        GIT_TERMINAL_PROMPT="0",
        GIT_ASKPASS="true",  # any password prompt gets an empty answer and fails at once
        SSH_ASKPASS_REQUIRE="never",
        GIT_SSH_COMMAND="ssh -o BatchMode=yes -o ConnectTimeout=30",
        GIT_ALLOW_PROTOCOL=ALLOWED_PROTOCOLS,
        GIT_NO_REPLACE_OBJECTS="1",
        GCM_INTERACTIVE="never",
        LC_ALL="C",  # git's messages in English, as _NO_REMOTE_HEAD expects
    )
    env.pop("LANGUAGE", None)
    return env


_BOILERPLATE = ("hint:", "Please make sure you have the correct access rights", "and the repo")


def _clean_stderr(err: bytes, repo: str) -> str:
    """git's (and ssh's) error lines as one line, credentials removed."""
    text = err.decode("utf-8", "replace").replace(repo, redact_url(repo))
    lines = [line.strip() for line in text.splitlines()]
    kept = [line for line in lines if line and not line.startswith(_BOILERPLATE)]
    message = "; ".join(line.removeprefix("fatal: ") for line in kept[-3:])
    return redact_url(message) or "git failed without a message"


_BARE_CONFIG = b"[core]\n\trepositoryformatversion = 0\n\tfilemode = true\n\tbare = true\n"


def _init_bare(mirror: Path) -> None:
    """An empty bare repository without starting ``git init``: the config and HEAD it
    writes, and the two folders git needs to call a folder a repository (the others are
    made by the fetch that fills it). HEAD is written last: a mirror a crash left
    without it is made again."""
    mirror.mkdir(parents=True, exist_ok=True)
    (mirror / "objects").mkdir(exist_ok=True)
    (mirror / "refs").mkdir(exist_ok=True)
    (mirror / "config").write_bytes(_BARE_CONFIG)
    (mirror / "HEAD").write_bytes(b"ref: refs/heads/master\n")


def _plain_branch_ref(branch: str) -> str | None:
    """``refs/heads/<branch>`` when the name holds no revision syntax (``~ ^ : @ ..``)."""
    if _PLAIN_BRANCH.fullmatch(branch) and ".." not in branch:
        return f"refs/heads/{branch}"
    return None


def _check_address(repo: str) -> None:
    if not repo or repo.startswith("-"):
        raise SourceError(f"not a repository address: {redact_url(repo)!r}")
    if not is_remote(repo) and not Path(repo).exists():
        raise SourceError(f"{repo} does not exist")


def _parse_log_record(record: bytes) -> Commit:
    sha, stamp, subject = record.strip(b"\n").split(b"\x1f", 2)
    return Commit(sha.decode(), utc_from_timestamp(int(stamp)), subject.decode("utf-8", "replace"))


_TreeEntry = tuple[int, str, str, int, str]  # mode, type, object id, size, path


def _parse_tree_entry(entry: bytes) -> _TreeEntry:
    meta, path = entry.split(b"\t", 1)
    mode, kind, oid, size = meta.split()
    return (
        int(mode, 8),
        kind.decode(),
        oid.decode(),
        int(size) if size.isdigit() else 0,
        path.decode("utf-8", "surrogateescape"),
    )


def _parse_batch(out: bytes) -> dict[str, bytes]:
    """``git cat-file --batch`` output -> object id -> contents."""
    contents: dict[str, bytes] = {}
    pos = 0
    while pos < len(out):
        end = out.index(b"\n", pos)
        header = out[pos:end].split()
        if len(header) != 3:
            raise SourceError(f"object {header[0].decode()} is missing from the mirror")
        size = int(header[2])
        contents[header[0].decode()] = out[end + 1 : end + 1 + size]
        pos = end + 1 + size + 1
    return contents


def _workspace_file(entry: _TreeEntry, contents: Mapping[str, bytes]) -> WorkspaceFile:
    mode, _, oid, _, path = entry
    data = contents[oid]
    if stat.S_ISLNK(mode):
        return WorkspaceFile(path, mode, link_target=data.decode("utf-8", "surrogateescape"))
    return WorkspaceFile(path, mode, data)
