"""GitSources on real repositories in tmp_path, real bundles (the sample course) and folders."""

from __future__ import annotations

import asyncio
import http.server
import os
import socket
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from grader.archive import build_archive
from grader.config import load_course
from grader.errors import ArchiveError, SourceError
from grader.histories import HISTORY_FILE
from grader.roster import load_roster, repo_for
from grader.sources import REMOTE_HEAD, Commit, GitSources, git_environment, pick_commit_at
from tests.support.repos import commit, git

SAMPLE = Path(__file__).resolve().parents[2] / "sample_course"
NEW_YORK = ZoneInfo("America/New_York")
T0 = datetime(2026, 9, 15, 9, 0, tzinfo=NEW_YORK)


def history(sources: GitSources, repo: Path | str, branch: str | None = None) -> list[Commit]:
    return asyncio.run(sources.history(str(repo), branch))


@pytest.fixture
def sources(tmp_path: Path) -> GitSources:
    return GitSources(tmp_path / "mirrors")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A student repository with three commits on main, an hour apart (New York time)."""
    path = tmp_path / "student"
    commit(path, {"solution.py": "x = 1\n"}, "Starter", T0)
    commit(path, {"solution.py": "x = 2\n"}, "First try", T0 + timedelta(hours=1))
    commit(path, {"solution.py": "x = 3\n"}, "Fix it", T0 + timedelta(hours=2))
    return path


# history ------------------------------------------------------------------------------


def test_history_lists_commits_newest_first_with_utc_dates(sources: GitSources, repo: Path) -> None:
    commits = history(sources, repo)
    assert [c.subject for c in commits] == ["Fix it", "First try", "Starter"]
    assert commits[0].committed_at == datetime(2026, 9, 15, 15, 0, tzinfo=UTC)
    assert commits[0].committed_at.tzinfo is UTC
    assert commits[0].sha == git(repo, "rev-parse", "HEAD")
    assert not commits[0].snapshot


def test_history_follows_first_parents_only(sources: GitSources, repo: Path) -> None:
    git(repo, "checkout", "-q", "-b", "side", "HEAD~1")
    commit(repo, {"side.py": "s\n"}, "Side work", T0 + timedelta(hours=3))
    git(repo, "checkout", "-q", "main")
    stamp = (T0 + timedelta(hours=4)).isoformat()
    git(
        repo, "merge", "-q", "--no-ff", "-m", "Merge side", "side",
        env={"GIT_AUTHOR_DATE": stamp, "GIT_COMMITTER_DATE": stamp},
    )  # fmt: skip
    assert [c.subject for c in history(sources, repo)] == [
        "Merge side",
        "Fix it",
        "First try",
        "Starter",
    ]


def test_default_branch_is_the_one_head_points_at(sources: GitSources, tmp_path: Path) -> None:
    path = tmp_path / "trunk-repo"
    path.mkdir()
    git(path, "init", "-q", "-b", "trunk")
    commit(path, {"a": "1"}, "One", T0)
    git(path, "branch", "main")
    commit(path, {"a": "2"}, "Two on trunk", T0 + timedelta(hours=1))
    assert history(sources, path)[0].subject == "Two on trunk"
    assert GitSources(tmp_path / "other").mirror_path(str(path)) != sources.mirror_path(str(path))
    assert [c.subject for c in history(GitSources(tmp_path / "m2"), path, "main")] == ["One"]


def test_unknown_branch_names_the_branches_there(sources: GitSources, repo: Path) -> None:
    with pytest.raises(SourceError, match=r"branch 'dev' not found in .*\(branches: main\)"):
        history(sources, repo, "dev")


def test_branch_name_is_never_read_as_a_revision(sources: GitSources, repo: Path) -> None:
    with pytest.raises(SourceError, match=r"branch 'main~1' not found in .*\(branches: main\)"):
        history(sources, repo, "main~1")


def test_history_of_the_default_branch_lists_no_refs(sources: GitSources, repo: Path) -> None:
    assert len(history(sources, repo)) == len(history(sources, repo, "main")) == 3
    assert sources.commands == {"fetch": 1, "log": 2}


def test_a_new_mirror_is_the_bare_repository_git_init_makes(
    sources: GitSources, repo: Path, tmp_path: Path
) -> None:
    history(sources, repo)  # made without starting git
    mirror = sources.mirror_path(str(repo))
    reference = tmp_path / "reference"
    git(tmp_path, "init", "--quiet", "--bare", "--template=", str(reference))
    for name in ("config", "HEAD"):
        assert (mirror / name).read_text() == (reference / name).read_text()
    assert git(mirror, "rev-parse", "--is-bare-repository") == "true"
    git(mirror, "fsck", "--no-progress")
    head = (mirror / "HEAD").read_text()
    (mirror / "HEAD").unlink()  # as a crash between the folders and HEAD leaves it
    assert history(GitSources(sources.mirrors_dir), repo) == history(sources, repo)
    assert (mirror / "HEAD").read_text() == head


def test_later_run_asks_the_remote_and_reuses_the_history_of_an_unmoved_tip(
    tmp_path: Path, repo: Path
) -> None:
    first = history(GitSources(tmp_path / "mirrors"), repo)
    later = GitSources(tmp_path / "mirrors")
    assert history(later, repo) == first
    assert later.commands == {"ls-remote": 1}  # no fetch, no log


def test_later_run_fetches_a_moved_tip_and_a_moved_remote_head(tmp_path: Path, repo: Path) -> None:
    history(GitSources(tmp_path / "mirrors"), repo)
    commit(repo, {"solution.py": "x = 4\n"}, "Later", T0 + timedelta(hours=3))
    moved = GitSources(tmp_path / "mirrors")
    assert history(moved, repo)[0].subject == "Later"
    assert moved.commands == {"ls-remote": 1, "fetch": 1, "log": 1}
    git(repo, "checkout", "-q", "-b", "other", "HEAD~2")  # HEAD now names another branch
    assert history(GitSources(tmp_path / "mirrors"), repo)[0].subject == "First try"


def test_unreadable_stored_history_means_a_fetch(tmp_path: Path, repo: Path) -> None:
    first = GitSources(tmp_path / "mirrors")
    history(first, repo)
    (first.mirror_path(str(repo)) / HISTORY_FILE).write_text('{"refs/grader/remote-head": 1}')
    again = GitSources(tmp_path / "mirrors")
    assert len(history(again, repo)) == 3
    assert again.commands == {"fetch": 1, "log": 1}


def test_git_never_waits_for_the_loops_default_executor(sources: GitSources, repo: Path) -> None:
    """The default executor also resolves the engine's host names: git has threads of its own."""

    async def go() -> list[Commit]:
        loop = asyncio.get_running_loop()
        loop.set_default_executor(ThreadPoolExecutor(1))
        release = threading.Event()
        busy = loop.run_in_executor(None, release.wait, 60)  # its one thread taken
        try:
            return await asyncio.wait_for(sources.history(str(repo)), 30)
        finally:
            release.set()
            await busy

    assert len(asyncio.run(go())) == 3


def test_later_run_fetches_into_the_same_mirror(tmp_path: Path, repo: Path) -> None:
    first = GitSources(tmp_path / "mirrors")
    assert len(history(first, repo)) == 3
    mirror = first.mirror_path(str(repo))
    (mirror / "kept-by-fetch").write_text("a re-clone would delete this")
    commit(repo, {"solution.py": "x = 4\n"}, "Later", T0 + timedelta(hours=3))
    assert len(history(first, repo)) == 3  # one fetch per GitSources (per run)
    second = GitSources(tmp_path / "mirrors")
    assert history(second, repo)[0].subject == "Later"
    assert (mirror / "kept-by-fetch").exists()
    assert "url" not in (mirror / "config").read_text()  # the address is never stored


def test_concurrent_reads_of_one_repository_share_one_fetch(
    sources: GitSources, repo: Path
) -> None:
    async def both() -> tuple[list[Commit], list[Commit]]:
        one, two = await asyncio.gather(sources.history(str(repo)), sources.history(str(repo)))
        return one, two

    one, two = asyncio.run(both())
    assert one == two
    assert len(list(sources.mirrors_dir.iterdir())) == 1


def test_bundle_is_an_ordinary_source(sources: GitSources, repo: Path, tmp_path: Path) -> None:
    bundle = tmp_path / "ada.bundle"
    git(repo, "bundle", "create", "-q", str(bundle), "--all")
    assert [c.subject for c in history(sources, bundle)] == ["Fix it", "First try", "Starter"]


def test_bundle_without_head_uses_its_only_branch(
    sources: GitSources, repo: Path, tmp_path: Path
) -> None:
    bundle = tmp_path / "main-only.bundle"
    git(repo, "bundle", "create", "-q", str(bundle), "main")
    commits = history(sources, bundle)
    assert commits[0].subject == "Fix it"
    refs = git(sources.mirror_path(str(bundle)), "for-each-ref", "--format=%(refname)")
    assert REMOTE_HEAD not in refs


def test_bundle_of_a_detached_head_is_read_at_that_head(
    sources: GitSources, repo: Path, tmp_path: Path
) -> None:
    bundle = tmp_path / "head-only.bundle"
    git(repo, "checkout", "-q", "--detach")
    git(repo, "bundle", "create", "-q", str(bundle), "HEAD")
    assert [c.subject for c in history(sources, bundle)] == ["Fix it", "First try", "Starter"]


def test_sample_erivera_late_fix_is_not_graded(sources: GitSources) -> None:
    course = load_course(SAMPLE)
    hw1 = course.assignment("hw1")
    erivera = next(s for s in load_roster(course.roster) if s.student_id == "erivera")
    commits = asyncio.run(sources.history(repo_for(erivera, hw1.repo, base=course.root)))
    choice = pick_commit_at(commits, hw1.cutoff_for("erivera"))
    assert choice is not None
    assert choice.commit.subject == "Homework 1 solution"
    assert choice.ignored == 1
    assert '"Fix tie order in top_words", committed 2026-09-23 14:12 UTC' in choice.reason


def test_sample_hpatel_hw2_missing_bundle_is_unavailable(sources: GitSources) -> None:
    course = load_course(SAMPLE)
    hpatel = next(s for s in load_roster(course.roster) if s.student_id == "hpatel")
    repo = repo_for(hpatel, course.assignment("hw2").repo, base=course.root)
    with pytest.raises(SourceError, match=r"repository unavailable: .*hpatel\.bundle does not"):
        asyncio.run(sources.history(repo))
    assert not sources.mirrors_dir.exists() or not any(sources.mirrors_dir.iterdir())


def test_file_that_is_not_a_repository_is_unavailable(sources: GitSources, tmp_path: Path) -> None:
    junk = tmp_path / "junk.bundle"
    junk.write_text("not a bundle")
    with pytest.raises(SourceError, match="repository unavailable"):
        history(sources, junk)
    assert not any(sources.mirrors_dir.iterdir())  # no empty mirror left behind


def test_empty_repository_has_no_commits(sources: GitSources, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    git(empty, "init", "-q")
    with pytest.raises(SourceError, match="has no commits"):
        history(sources, empty)


# hostile addresses and hostile environments -------------------------------------------


def test_command_transport_is_refused(sources: GitSources, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    with pytest.raises(SourceError, match="transport 'ext' not allowed"):
        history(sources, f"ext::sh -c touch% {marker}")
    assert not marker.exists()


def test_address_that_looks_like_an_option_is_refused(sources: GitSources) -> None:
    with pytest.raises(SourceError, match="not a repository address"):
        history(sources, "-oProxyCommand=touch /tmp/x:repo")


@pytest.fixture
def auth_server() -> Iterator[str]:
    """A real HTTP server that answers every request with 401 Basic."""

    class Deny(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="git"')
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Deny)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_private_repository_fails_fast_without_prompting_or_leaking(
    sources: GitSources, auth_server: str
) -> None:
    url = f"http://student:t0ps3cret@{auth_server}/org/hw1.git"
    with pytest.raises(SourceError) as info:
        history(sources, url)
    message = str(info.value)
    assert message == f"{info.value.kind}: {info.value.detail}"
    assert info.value.kind == "repository unavailable"
    assert not info.value.detail.startswith("repository unavailable")  # said once
    assert "t0ps3cret" not in message
    assert "student:" not in message
    assert "Authentication failed" in message or "401" in message


def test_credentials_do_not_change_the_mirror_folder(sources: GitSources) -> None:
    one = sources.mirror_path("https://x-access-token:aaa@github.com/org/hw1-ada.git")
    two = sources.mirror_path("https://x-access-token:bbb@github.com/org/hw1-ada.git")
    assert one == two == sources.mirror_path("https://github.com/org/hw1-ada.git")
    assert one.name.startswith("hw1-ada-")


def test_a_server_that_never_answers_times_out(tmp_path: Path) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)  # connections complete in the backlog and are never answered
        port = listener.getsockname()[1]
        slow = GitSources(tmp_path / "mirrors", fetch_timeout=1)
        with pytest.raises(SourceError, match=r"git fetch on http://127\.0\.0\.1:\d+/x\.git took"):
            history(slow, f"http://u:secret@127.0.0.1:{port}/x.git")


def test_user_configuration_and_git_variables_do_not_leak_in(
    sources: GitSources, repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / ".gitconfig").write_text("[core\nthis is not valid configuration\n")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home))
    monkeypatch.setenv("GIT_DIR", str(tmp_path / "nowhere"))
    monkeypatch.setenv("GIT_CONFIG_PARAMETERS", "'fetch.prune'='not-a-bool'")
    assert len(history(sources, repo)) == 3


def test_git_environment_forbids_prompts_and_configuration() -> None:
    env = git_environment({"PATH": "/bin", "GIT_DIR": "/x", "SSH_ASKPASS": "/gui", "HOME": "/h"})
    assert "GIT_DIR" not in env
    assert "SSH_ASKPASS" not in env
    assert env["GIT_TERMINAL_PROMPT"] == "0"
    assert env["GIT_CONFIG_NOSYSTEM"] == "1"
    assert env["GIT_CONFIG_GLOBAL"] == os.devnull
    assert "BatchMode=yes" in env["GIT_SSH_COMMAND"]
    assert "ext" not in env["GIT_ALLOW_PROTOCOL"].split(":")


# files --------------------------------------------------------------------------------


def test_files_read_the_tree_with_modes_links_and_contents(sources: GitSources, repo: Path) -> None:
    (repo / "bin").mkdir()
    (repo / "bin" / "run.sh").write_text("#!/bin/sh\n")
    (repo / "bin" / "run.sh").chmod(0o755)
    (repo / "link.py").symlink_to("solution.py")
    commit(repo, {"src/deep/m.py": "m\n"}, "More", T0 + timedelta(hours=3))
    sha = history(sources, repo)[0].sha
    files = {f.path: f for f in asyncio.run(sources.files(str(repo), sha))}
    assert sorted(files) == ["bin/run.sh", "link.py", "solution.py", "src/deep/m.py"]
    assert files["bin/run.sh"].executable
    assert not files["solution.py"].executable
    assert files["solution.py"].data == b"x = 3\n"
    assert files["link.py"].link_target == "solution.py"
    assert not (repo / ".grader").exists()  # nothing is checked out anywhere
    archive = build_archive(files.values(), max_bytes=2**20)
    assert archive.file_count == 4


def test_files_of_an_older_commit_are_that_commits_files(sources: GitSources, repo: Path) -> None:
    oldest = history(sources, repo)[-1].sha
    [file] = asyncio.run(sources.files(str(repo), oldest))
    assert (file.path, file.data) == ("solution.py", b"x = 1\n")


def test_files_skip_submodules(sources: GitSources, repo: Path) -> None:
    head = git(repo, "rev-parse", "HEAD")
    git(repo, "update-index", "--add", "--cacheinfo", f"160000,{head},vendor/lib")
    stamp = (T0 + timedelta(hours=5)).isoformat()
    git(repo, "commit", "-q", "-m", "Add submodule", env={"GIT_COMMITTER_DATE": stamp})
    sha = history(sources, repo)[0].sha
    assert [f.path for f in asyncio.run(sources.files(str(repo), sha))] == ["solution.py"]


def test_file_name_that_is_not_utf8_survives_to_the_archive_check(
    sources: GitSources, repo: Path
) -> None:
    fd = os.open(bytes(repo) + b"/caf\xe9.txt", os.O_WRONLY | os.O_CREAT, 0o644)
    os.close(fd)
    commit(repo, {}, "Odd name", T0 + timedelta(hours=3))
    files = asyncio.run(sources.files(str(repo), history(sources, repo)[0].sha))
    assert os.fsdecode(b"caf\xe9.txt") in [f.path for f in files]
    with pytest.raises(ArchiveError, match="not valid UTF-8"):
        build_archive(files, max_bytes=2**20)


def test_unknown_commit_is_a_source_error(sources: GitSources, repo: Path) -> None:
    history(sources, repo)
    with pytest.raises(SourceError, match="commit 0123456 cannot be read"):
        asyncio.run(sources.files(str(repo), "0123456789" * 4))
    with pytest.raises(SourceError, match="not a commit id"):
        asyncio.run(sources.files(str(repo), "HEAD"))


def test_commit_larger_than_the_read_limit_is_refused_before_reading(
    tmp_path: Path, repo: Path
) -> None:
    small = GitSources(tmp_path / "mirrors", max_read_bytes=4)
    sha = history(small, repo)[0].sha
    with pytest.raises(ArchiveError, match=r"commit \w{7} holds 6 bytes of files, more than"):
        asyncio.run(small.files(str(repo), sha))


# plain folders ------------------------------------------------------------------------


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    path = tmp_path / "work" / "ada"
    (path / "src").mkdir(parents=True)
    (path / "src" / "main.py").write_text("print('hi')\n")
    (path / "run.sh").write_text("#!/bin/sh\n")
    (path / "run.sh").chmod(0o755)
    (path / "link").symlink_to("src/main.py")
    os.utime(path / "src" / "main.py", (1_790_000_000, 1_790_000_000))
    os.utime(path / "run.sh", (1_789_000_000, 1_789_000_000))
    os.utime(path / "link", (1_780_000_000, 1_780_000_000), follow_symlinks=False)
    os.utime(path / "src", (1_700_000_000, 1_700_000_000))
    os.utime(path, (1_700_000_000, 1_700_000_000))
    return path


def test_folder_is_one_snapshot_dated_by_its_newest_file(sources: GitSources, folder: Path) -> None:
    [snapshot] = history(sources, folder)
    assert snapshot.snapshot
    assert len(snapshot.sha) == 64
    assert snapshot.committed_at == datetime.fromtimestamp(1_790_000_000, UTC)
    files = {f.path: f for f in asyncio.run(sources.files(str(folder), snapshot.sha))}
    assert sorted(files) == ["link", "run.sh", "src/main.py"]
    assert files["run.sh"].executable
    assert files["link"].link_target == "src/main.py"
    assert not sources.mirrors_dir.exists()  # folders need no mirror


def test_folder_hash_follows_content_not_times(sources: GitSources, folder: Path) -> None:
    [before] = history(sources, folder)
    os.utime(folder / "run.sh", (1_795_000_000, 1_795_000_000))
    [touched] = history(sources, folder)
    assert touched.sha == before.sha
    assert touched.committed_at > before.committed_at
    (folder / "src" / "main.py").write_text("print('changed')\n")
    [changed] = history(sources, folder)
    assert changed.sha != before.sha


def test_folder_changed_between_history_and_files_is_refused(
    sources: GitSources, folder: Path
) -> None:
    [snapshot] = history(sources, folder)
    (folder / "new.py").write_text("late\n")
    with pytest.raises(SourceError, match="changed while it was being graded"):
        asyncio.run(sources.files(str(folder), snapshot.sha))


def test_folder_with_a_fifo_does_not_hang(sources: GitSources, folder: Path) -> None:
    os.mkfifo(folder / "pipe")
    [snapshot] = history(sources, folder)
    paths = [f.path for f in asyncio.run(sources.files(str(folder), snapshot.sha))]
    assert "pipe" not in paths


def test_folder_snapshot_is_graded_with_a_folder_reason(sources: GitSources, folder: Path) -> None:
    commits = history(sources, folder)
    choice = pick_commit_at(commits, datetime(2027, 1, 1, tzinfo=UTC))
    assert choice is not None
    assert choice.reason.startswith("Graded a snapshot of the folder")
    assert pick_commit_at(commits, datetime(2026, 1, 1, tzinfo=UTC)) is None
