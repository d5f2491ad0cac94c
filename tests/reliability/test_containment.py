"""A task cannot change the user's repository, and nothing lands that should not.

Issue 14's "Wrong landings" and "Escapes" (but the sandbox's, in test_sandbox.py): each case
is a real run on a real repository, with a task that does what a sloppy or hostile agent
does, and the user's repository checked afterwards.
"""

from __future__ import annotations

import shlex
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from plait.domain.plan.parsing import plan_from_mapping
from plait.execution.errors import RepositoryChanged
from tests.gitrepo import commit_file, git, make_repo
from tests.integration.orchestration_helpers import (
    WORKTREE_MODES,
    Harness,
    branch_tip,
    files_on,
    of_type,
    open_harness,
    plan,
    task,
    write,
)


def commit_refs(repo: Path) -> list[str]:
    """Every ref that names a commit (plait keeps other objects under refs/plait/ too)."""
    listed = git(repo, "for-each-ref", "--format=%(objecttype) %(refname)")
    return [line.split(" ", 1)[1] for line in listed.splitlines() if line.startswith("commit ")]


@pytest.fixture(params=WORKTREE_MODES)
async def harness(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    """Each test with fresh task repositories and with pooled ones: the same promises."""
    async with open_harness(tmp_path, reuse_worktrees=request.param == "pooled") as opened:
        yield opened


def refs_of(repo: Path) -> dict[str, str]:
    """Every ref of the user's but plait's own (its task and result branches, its kept refs)."""
    listed = git(repo, "for-each-ref", "--format=%(refname) %(objectname)")
    pairs = (line.split(" ", 1) for line in listed.splitlines())
    return {
        name: sha
        for name, sha in pairs
        if not name.startswith(("refs/heads/plait/", "refs/plait/"))
    }


# -- wrong landings ---------------------------------------------------------------------------


@pytest.mark.parametrize("checkout", ["release", "--ignore-other-worktrees main"])
async def test_a_task_that_checks_out_another_branch_never_gets_plaits_commit_on_it(
    harness: Harness, checkout: str
) -> None:
    repo = harness.repo
    git(repo, "branch", "release")
    before = refs_of(repo)
    culprit = f"git checkout --quiet {checkout} && " + write("culprit.txt", "breaks the tests")

    done = await harness.run(
        plan(task("culprit", culprit), base="main", test_command="test ! -e culprit.txt")
    )

    assert refs_of(repo) == before  # main did not move either: nothing landed
    assert "culprit.txt" not in files_on(repo, "release")
    assert "culprit.txt" not in files_on(repo, "main")
    statuses = {t["task_id"]: t["status"] for t in of_type(done.events, "TaskEjected")}
    assert statuses == {} or "culprit" in statuses
    assert done.result.status != "landed", done.result


async def test_a_base_the_user_reset_to_drop_a_commit_never_gets_that_commit_back(
    harness: Harness,
) -> None:
    repo = harness.repo
    dropped = commit_file(repo, "credentials.txt", "password=hunter2\n")
    reset_to = git(repo, "rev-parse", f"{dropped}~1")
    # The user, mid-run: `git reset --hard HEAD~1` on main (in their checkout).
    users_reset = f"git -C {shlex.quote(str(repo))} reset --quiet --hard {reset_to} && "

    done = await harness.run(
        plan(task("feature", users_reset + write("feature.txt", "f")), test_command="true")
    )

    assert "credentials.txt" not in files_on(repo, "main")
    contains = git(repo, "branch", "--contains", dropped, "--format=%(refname:short)")
    assert "main" not in contains.splitlines()
    assert branch_tip(repo, "main") == reset_to
    assert done.result.status == "kept", done.result
    completed = of_type(done.events, "RunCompleted")[0]
    assert "not a descendant" in completed["not_landed_reason"]
    assert completed["land_command"]
    assert "feature.txt" in files_on(repo, f"plait/{done.run_id}/_result")


async def test_a_repository_replaced_by_a_plain_directory_inside_another_is_refused(
    tmp_path: Path,
) -> None:
    parent = make_repo(tmp_path / "parent")
    inner = make_repo(parent / "project")
    async with open_harness(tmp_path / "h", repo=inner) as harness:
        project_id = await harness.project()
        accepted = plan_from_mapping(plan(task("feature", write("feature.txt", "f"))))
        await harness.service.submit_plan(project_id, accepted)
        shutil.rmtree(inner / ".git")  # a plain directory now, inside `parent`'s checkout
        parent_main = branch_tip(parent, "main")

        with pytest.raises(RepositoryChanged, match="no longer a git repository"):
            await harness.service.start_run(project_id)

        assert branch_tip(parent, "main") == parent_main
        assert git(parent, "branch", "--list", "plait/*") == ""


async def test_a_repository_replaced_by_another_repository_is_refused(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    async with open_harness(tmp_path / "h", repo=repo) as harness:
        done = await harness.run(plan(task("one", write("one.txt", "1"))))
        assert done.result.status == "landed"
        shutil.rmtree(repo)
        repo.mkdir()  # the same path, another repository (another root commit)
        git(repo, "init", "--quiet", "--initial-branch=main")
        git(repo, "config", "user.name", "Someone Else")
        git(repo, "config", "user.email", "else@example.invalid")
        commit_file(repo, "other.txt", "another project\n")

        with pytest.raises(RepositoryChanged, match="another repository"):
            await harness.service.resume_run(await harness.project(), done.run_id)


# -- escapes ----------------------------------------------------------------------------------


async def test_a_tasks_git_config_and_hooks_stay_out_of_the_users_repository(
    harness: Harness,
) -> None:
    repo = harness.repo
    hooks = harness.shared / "evil-hooks"
    hooks.mkdir()
    hooked = harness.shared / "hooked"
    (hooks / "post-checkout").write_text(f"#!/bin/sh\ntouch {shlex.quote(str(hooked))}\n")
    (hooks / "post-checkout").chmod(0o755)
    config_before = (repo / ".git" / "config").read_bytes()
    own_hook = f"#!/bin/sh\ntouch {shlex.quote(str(hooked))}\n"
    meddles = (
        f"git config core.hooksPath {shlex.quote(str(hooks))} && "
        "git config user.name Mallory && "
        # a hook in its own repository's hooks directory too
        f"mkdir -p .git/hooks && printf %s {shlex.quote(own_hook)} > .git/hooks/post-checkout"
        " && chmod +x .git/hooks/post-checkout && "
        # its own main moved to its own commit: the user's stays (or the task would fail)
        "git commit --quiet --allow-empty -m mine && git update-ref refs/heads/main HEAD && "
        + write("feature.txt", "f")
    )

    done = await harness.run(plan(task("feature", meddles), base="main"))

    assert of_type(done.events, "TaskFailed") == []
    assert done.result.status == "landed", done.result
    assert (repo / ".git" / "config").read_bytes() == config_before
    assert "feature.txt" in files_on(repo, "main")
    git(repo, "checkout", "--quiet", "-b", "after")  # would run the task's post-checkout hook
    assert not hooked.exists()


COMMANDS = {
    # a file monitor: git's `add`, `write-tree` and `diff-tree` run it
    "core.fsmonitor": 'git config core.fsmonitor "$COMMAND"',
    # a clean filter for every file: `add` runs it
    "filter": 'echo "* filter=mine" > .gitattributes && git config filter.mine.clean "$COMMAND"',
}


@pytest.mark.parametrize("configures", COMMANDS.values(), ids=COMMANDS.keys())
async def test_a_command_a_task_configures_for_git_never_runs_for_plait(
    harness: Harness, configures: str
) -> None:
    ran = harness.shared / "command-ran"
    command = harness.shared / "command"
    command.write_text(f"#!/bin/sh\ntouch {shlex.quote(str(ran))}\ncat\n")
    command.chmod(0o755)
    # Its last step: no git of its own runs after it, only plait's would.
    sets = f"COMMAND={shlex.quote(str(command))} && {write('f.txt', 'f')} && {configures}"

    done = await harness.run(plan(task("configures", sets)))

    assert not ran.exists()
    failed = of_type(done.events, "TaskFailed")
    assert failed, [e.type for e in done.events]
    assert "not the repository plait made" in failed[0]["error"]
    assert "f.txt" not in files_on(harness.repo, "main")


async def test_a_task_that_reaches_into_the_users_repository_by_path_fails(
    harness: Harness,
) -> None:
    repo = harness.repo
    by_path = f"git -C {shlex.quote(str(repo))} config alias.st status && " + write("f.txt", "f")

    done = await harness.run(plan(task("sneaky", by_path)))

    failed = of_type(done.events, "TaskFailed")
    assert failed
    assert "changed your repository" in failed[0]["error"]
    assert "config" in failed[0]["error"]
    assert "f.txt" not in files_on(repo, "main")


async def test_a_task_that_moves_a_users_branch_by_path_fails(harness: Harness) -> None:
    repo = harness.repo
    git(repo, "branch", "release")
    moves = f"git -C {shlex.quote(str(repo))} branch -f release HEAD~1 && " + write("f.txt", "f")

    done = await harness.run(plan(task("sneaky", moves)))

    failed = of_type(done.events, "TaskFailed")
    assert failed
    assert "refs/heads/release" in failed[0]["error"]
    assert "f.txt" not in files_on(repo, "main")


async def test_copy_ignored_secrets_are_never_committed_even_when_the_task_unignores_them(
    harness: Harness,
) -> None:
    repo = harness.repo
    (repo / ".env").write_text("SECRET=hunter2\n")
    unignores = "printf 'build/\\n' > .gitignore && " + write("feature.txt", "f")

    done = await harness.run(plan(task("feature", unignores), copy_ignored=[".env"]))

    assert done.result.status == "landed", done.result
    assert ".env" not in files_on(repo, "main")
    assert "feature.txt" in files_on(repo, "main")
    for ref in commit_refs(repo):
        assert ".env" not in files_on(repo, ref), ref


# -- the base branch: the user may move it during a run, a task may not --------------------


async def test_a_task_that_commits_onto_the_base_branch_moves_only_its_own_repositorys(
    harness: Harness,
) -> None:
    repo = harness.repo
    tip = branch_tip(repo, "main")
    # `main` in the task's repository (fresh or a pooled slot) is its own: the commit stays
    # there, and plait takes it as the task's work (tested like any other: here, red).
    sneaky = (
        "git checkout --quiet main && "
        + write("sneaky.txt", "untested")
        + " && git add sneaky.txt && git commit --quiet -m sneaky"
    )
    done = await harness.run(
        plan(task("sneaky", sneaky), base="main", test_command="test ! -e sneaky.txt")
    )

    assert branch_tip(repo, "main") == tip
    assert done.result.status != "landed", done.result


async def test_a_task_that_sets_its_repositorys_config_leaves_the_users_alone(
    harness: Harness,
) -> None:
    repo = harness.repo
    config_before = (repo / ".git" / "config").read_bytes()

    done = await harness.run(
        plan(task("meddler", "git config alias.st status && " + write("f.txt", "f")))
    )

    assert done.result.status == "landed", done.result
    assert (repo / ".git" / "config").read_bytes() == config_before


async def test_a_task_that_moves_the_base_branch_by_path_to_its_own_commit_fails(
    harness: Harness,
) -> None:
    repo = harness.repo
    tip = branch_tip(repo, "main")
    # Its commit is in its own repository: it fetches it into the user's, then moves main.
    user = shlex.quote(str(repo))
    moves = (
        write("sneaky.txt", "untested")
        + " && git add sneaky.txt && git commit --quiet -m sneaky"
        + f' && git -C {user} fetch --quiet "$PWD" HEAD'
        + f" && git -C {user} update-ref refs/heads/main FETCH_HEAD"
    )

    done = await harness.run(plan(task("sneaky", moves), base="main"))

    failed = of_type(done.events, "TaskFailed")
    assert failed, [e.type for e in done.events]
    assert "changed your repository" in failed[0]["error"]
    assert "refs/heads/main" in failed[0]["error"]
    assert git(repo, "rev-parse", "main~1") == tip  # what the task did, and nothing more
    assert done.result.status != "landed", done.result


async def test_the_user_moving_the_base_branch_during_a_task_fails_no_task(
    harness: Harness,
) -> None:
    repo = harness.repo
    # The task itself advances the user's main the way the user would: a commit made in the
    # user's own checkout, which is no commit of the task's.
    user = f"git -C {shlex.quote(str(repo))} commit --quiet --allow-empty -m 'the user, meanwhile'"
    done = await harness.run(
        plan(task("feature", user + " && " + write("f.txt", "f")), base="main")
    )

    assert of_type(done.events, "TaskFailed") == []
    assert done.result.status == "landed", done.result
    assert "f.txt" in files_on(repo, "main")


# -- a task's repository swapped for a way into the user's ------------------------------------


def users_git_state(repo: Path) -> dict[str, bytes | str]:
    """What plait's git commands would write in the user's repository: refs, HEAD, index,
    config (the objects plait itself writes only for a task whose work it took)."""
    own = repo / ".git"
    return {
        "refs": "\n".join(sorted(f"{n} {s}" for n, s in refs_of(repo).items())),
        "plait refs": git(repo, "for-each-ref", "refs/heads/plait/", "refs/plait/"),
        "HEAD": (own / "HEAD").read_bytes(),
        "index": (own / "index").read_bytes(),
        "config": (own / "config").read_bytes(),
    }


LINKS = {
    # its .git replaced by a link to the user's
    "git dir linked": 'rm -rf .git && ln -s "$USER_GIT" .git',
    # a gitfile, as a linked worktree has, naming the user's
    "gitfile": 'rm -rf .git && echo "gitdir: $USER_GIT" > .git',
    # its refs replaced by the user's: plait's moves of its HEAD would move the user's
    "refs linked": 'rm -rf .git/refs && ln -s "$USER_GIT/refs" .git/refs',
    # its objects replaced by the user's: plait's commit would be written there
    "objects linked": 'rm -rf .git/objects && ln -s "$USER_GIT/objects" .git/objects',
    # a commondir file: git then takes refs and config from the user's
    "commondir": 'echo "$USER_GIT" > .git/commondir',
    # its config pointing git at the user's checkout
    "core.worktree": 'git config core.worktree "$(dirname "$USER_GIT")"',
}


@pytest.mark.parametrize("link", LINKS.values(), ids=LINKS.keys())
async def test_a_task_that_links_its_repository_to_the_users_fails_and_plait_never_touches_it(
    harness: Harness, link: str
) -> None:
    repo = harness.repo
    before = users_git_state(repo)
    user_git = shlex.quote(str(repo / ".git"))
    hostile = f"USER_GIT={user_git} && {write('work.txt', 'the work')} && {link}"

    done = await harness.run(plan(task("hostile", hostile), base="main"))

    failed = of_type(done.events, "TaskFailed")
    assert failed, [e.type for e in done.events]
    assert "not the repository plait made" in failed[0]["error"]
    assert done.result.status != "landed", done.result
    after = users_git_state(repo)
    assert {k: v for k, v in after.items() if k != "plait refs"} == {
        k: v for k, v in before.items() if k != "plait refs"
    }
    assert "work.txt" not in files_on(repo, "main")
    # The work stays where the task left it, and the report says where.
    path = Path(of_type(done.events, "WorktreeCreated")[0]["path"])
    assert (path / "work.txt").read_text() == "the work\n"
    kept = of_type(done.events, "WorkKept")
    assert any(str(path) in k["reason"] for k in kept), kept
