"""Git: argv-only runs, readable errors, revision helpers and the retry policy."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from plait.execution.git.cli import Git, GitError, UnknownRevisionError, transient_failure
from tests.gitrepo import commit_file, git, make_repo


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo")


async def test_run_returns_exit_code_and_both_streams(repo: Path) -> None:
    result = await Git(repo).run("rev-parse", "--abbrev-ref", "HEAD")
    assert (result.returncode, result.stdout, result.stderr) == (0, "main\n", "")


async def test_a_failed_command_raises_an_error_naming_argv_exit_code_and_stderr(
    repo: Path,
) -> None:
    with pytest.raises(GitError) as caught:
        await Git(repo).run("cat-file", "-p", "0" * 40)
    error = caught.value
    assert error.argv == ["git", "cat-file", "-p", "0" * 40]
    assert error.returncode == 128
    assert "0000000000000000000000000000000000000000" in error.stderr
    assert "git cat-file -p" in str(error)
    assert "exited with 128" in str(error)


async def test_an_unchecked_failure_is_returned_not_raised(repo: Path) -> None:
    result = await Git(repo).run("rev-parse", "--verify", "--quiet", "nope", check=False)
    assert result.returncode == 1


async def test_stdin_is_empty_unless_input_is_given(repo: Path) -> None:
    empty_blob = "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"
    assert (await Git(repo).run("hash-object", "--stdin")).stdout.strip() == empty_blob
    given = await Git(repo).run("hash-object", "--stdin", input="hello\n")
    assert given.stdout.strip() == "ce013625030ba8dba906f756967f9e9ca394464a"


async def test_git_never_prompts_and_speaks_the_c_locale(repo: Path) -> None:
    result = await Git(repo).run("-c", "alias.showenv=!env", "showenv")
    env = dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
    assert env["GIT_TERMINAL_PROMPT"] == "0"
    assert env["LC_ALL"] == "C"


async def test_git_dir_in_our_own_environment_does_not_redirect_git(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = make_repo(tmp_path / "other")
    monkeypatch.setenv("GIT_DIR", str(other / ".git"))
    assert await Git(repo).toplevel() == repo.resolve()


async def test_rev_parse_gives_the_full_sha_of_a_commit(repo: Path) -> None:
    head = git(repo, "rev-parse", "HEAD")
    assert await Git(repo).rev_parse("main") == head
    assert await Git(repo).rev_parse(head[:8]) == head


async def test_rev_parse_of_an_unknown_ref_raises_a_clear_error(repo: Path) -> None:
    with pytest.raises(UnknownRevisionError, match="unknown revision 'no-such-branch'"):
        await Git(repo).rev_parse("no-such-branch")


async def test_rev_parse_of_a_tree_is_not_a_commit(repo: Path) -> None:
    tree = git(repo, "rev-parse", "HEAD^{tree}")
    with pytest.raises(UnknownRevisionError):
        await Git(repo).rev_parse(tree)


@pytest.mark.parametrize("rev", ["--upload-pack=x", "-h", "--git-dir", ""])
async def test_rev_parse_refuses_anything_that_could_be_read_as_an_option(
    repo: Path, rev: str
) -> None:
    with pytest.raises(UnknownRevisionError):
        await Git(repo).rev_parse(rev)


async def test_a_commit_git_reports_making_needs_no_git_process_to_check_again(
    repo: Path,
) -> None:
    made = git(repo, "commit-tree", git(repo, "rev-parse", "HEAD^{tree}"), "-m", "made")
    cached = Git(repo)
    assert cached.made_commit(made + "\n") == made
    cached.executable = str(repo / "no-such-git")  # from here on, any git process fails
    assert await cached.rev_parse(made) == made
    assert cached.made_commit("not a commit id") == "not a commit id"
    with pytest.raises(FileNotFoundError, match="no-such-git"):
        await cached.rev_parse("not a commit id")


async def test_current_branch_is_none_when_head_is_detached(repo: Path) -> None:
    assert await Git(repo).current_branch() == "main"
    git(repo, "checkout", "--quiet", "--detach", "HEAD")
    assert await Git(repo).current_branch() is None


async def test_is_ancestor_follows_history_one_way(repo: Path) -> None:
    old = git(repo, "rev-parse", "HEAD~1")
    new = commit_file(repo, "x.txt", "x\n")
    assert await Git(repo).is_ancestor(old, new)
    assert not await Git(repo).is_ancestor(new, old)


async def test_common_dir_and_toplevel_are_absolute_from_a_linked_worktree(
    repo: Path, tmp_path: Path
) -> None:
    linked = tmp_path / "linked"
    git(repo, "worktree", "add", "--quiet", "--detach", str(linked))
    assert await Git(linked).common_dir() == (repo / ".git").resolve()
    assert await Git(linked).toplevel() == linked.resolve()


async def test_a_stale_index_lock_fails_at_once_with_advice_and_is_left_in_place(
    repo: Path,
) -> None:
    lock = repo / ".git" / "index.lock"
    lock.write_text("")
    an_hour_ago = time.time() - 3600
    os.utime(lock, (an_hour_ago, an_hour_ago))
    (repo / "README.md").write_text("changed\n")
    with pytest.raises(GitError, match="probably left by a git that was killed"):
        await Git(repo).run("add", "README.md")
    assert lock.exists()


def test_only_the_worktree_commondir_race_and_fresh_locks_count_as_transient(
    tmp_path: Path,
) -> None:
    race = "fatal: failed to read .git/worktrees/t1.1/commondir: Success\n"
    assert transient_failure(race)
    fresh = tmp_path / "index.lock"
    fresh.write_text("")
    assert transient_failure(f"fatal: Unable to create '{fresh}': File exists.\n")
    gone = tmp_path / "gone.lock"
    assert transient_failure(f"fatal: Unable to create '{gone}': File exists.\n")
    old = tmp_path / "old.lock"
    old.write_text("")
    os.utime(old, (0, 0))
    assert not transient_failure(f"fatal: Unable to create '{old}': File exists.\n")
    assert not transient_failure("fatal: not a git repository\n")
