"""The real aider CLI against the fake OpenAI chat completions server: the contract plait relies on.

Each test runs `aider --message ...` in a git worktree that lives outside its repository (its
`.git` is a file pointing into the main repository's `.git/worktrees/NAME`), as plait lays
them out, with stdin from /dev/null and HOME in a temporary directory. `aider_argv` and
`aider_env` are what plait should run aider with; the tests that drop a flag show what it is for.

What aider does that plait must know: it exits 0 whatever happened to the model call (a 401,
a provider that stays down), so plait reads its stdout; it prints `Tokens: ... Cost: ...`
only after a reply; it retries a 500 or a timeout for about a minute of backoff on its own.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.fakemodel.agents import agent_binary
from tests.fakemodel.server import FakeModelServer, RecordedRequest
from tests.gitrepo import ENV, git, make_repo

MODEL = "openai/gpt-4o-mini"
# What litellm's bundled price list says for gpt-4o-mini (per token); the metadata file below
# says the same, so the cost does not depend on which of the two aider uses.
INPUT_COST = 0.15e-6
OUTPUT_COST = 0.60e-6

TOKENS_LINE = re.compile(
    r"^Tokens: (?P<sent>[\d.]+k?) sent, (?P<received>[\d.]+k?) received\."
    r" Cost: \$(?P<message>[\d.]+) message, \$(?P<session>[\d.]+) session\.$",
    re.M,
)
AUTH_ERROR = (
    "litellm.AuthenticationError: AuthenticationError: OpenAIException - Incorrect API key"
    " provided: "
)
AUTH_HINT = "The API provider is not able to authenticate you. Check your API key."
SERVER_ERROR = (
    "litellm.InternalServerError: InternalServerError: OpenAIException - The server had an"
    " error while processing your request. Sorry about that!"
)
DOWN_HINT = "The API provider's servers are down or overloaded."
TIMEOUT_ERROR = (
    "litellm.Timeout: APITimeoutError - Request timed out. Error_str: Request timed out."
)


@dataclass(frozen=True)
class Layout:
    """A repository and a worktree of it beside it (not inside it), plus aider's outside dirs."""

    repo: Path
    worktree: Path
    home: Path
    state: Path  # where plait keeps aider's history files for this attempt


@dataclass(frozen=True)
class AiderRun:
    returncode: int
    stdout: str
    stderr: str
    requests: list[RecordedRequest]

    def tokens(self) -> re.Match[str]:
        found = TOKENS_LINE.search(self.stdout)
        assert found, f"no Tokens/Cost line in:\n{self.stdout}"
        return found


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    repo = make_repo(tmp_path / "repo", identity=False)
    worktree = tmp_path / "worktrees" / "task-1"
    git(repo, "worktree", "add", "--quiet", "-b", "plait/task-1", str(worktree))
    home = tmp_path / "home"
    state = tmp_path / "state"
    home.mkdir()
    state.mkdir()
    return Layout(repo, worktree, home, state)


@pytest.fixture
def metadata_file(tmp_path: Path) -> Path:
    """The model's context size and prices, so aider looks nothing up on the internet."""
    path = tmp_path / "model-metadata.json"
    path.write_text(
        '{"openai/gpt-4o-mini": {"max_input_tokens": 128000, "max_output_tokens": 16384,'
        f' "input_cost_per_token": {INPUT_COST}, "output_cost_per_token": {OUTPUT_COST},'
        ' "litellm_provider": "openai", "mode": "chat"}}'
    )
    return path


@pytest.fixture
def no_sdk_retries(tmp_path: Path) -> Path:
    """Model settings that stop the openai SDK's own 2 retries inside each of aider's attempts."""
    path = tmp_path / "model-settings.yml"
    path.write_text("- name: aider/extra_params\n  extra_params:\n    max_retries: 0\n")
    return path


def aider_env(layout: Layout, key: str) -> dict[str, str]:
    """A clean environment: nothing of the caller's (no provider keys, no AIDER_* settings)."""
    return {
        "PATH": os.environ["PATH"],
        "HOME": str(layout.home),
        "LANG": "C.UTF-8",
        "OPENAI_API_KEY": key,
        # litellm's price list from its package, not from GitHub at import.
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        # One line per message: rich wraps at 80 columns when stdout is not a terminal.
        "COLUMNS": "10000",
        # aider offers to open every URL in an error message; with --yes-always it accepts.
        "BROWSER": "true",
        "PYTHONUNBUFFERED": "1",
        # An identity, or aider writes "Your Name" <you@example.com> into the repository's config.
        "GIT_CONFIG_COUNT": "2",
        "GIT_CONFIG_KEY_0": "user.name",
        "GIT_CONFIG_VALUE_0": "plait",
        "GIT_CONFIG_KEY_1": "user.email",
        "GIT_CONFIG_VALUE_1": "plait@localhost",
    }


def aider_argv(
    layout: Layout, server: FakeModelServer, prompt: str, metadata: Path | None, *extra: str
) -> list[str]:
    argv = [
        str(agent_binary("aider")),
        "--model", MODEL,
        "--openai-api-base", server.url + "/v1",
        "--message", prompt,
        "--yes-always",
        "--no-stream",
        "--no-pretty",
        "--no-fancy-input",
        "--no-auto-commits",
        "--no-dirty-commits",
        "--no-gitignore",
        "--map-tokens", "0",
        "--chat-history-file", str(layout.state / "chat.history.md"),
        "--input-history-file", str(layout.state / "input.history"),
        "--llm-history-file", str(layout.state / "llm.history"),
        "--no-check-update",
        "--no-analytics",
        "--no-show-release-notes",
        "--no-show-model-warnings",
        "--no-detect-urls",
        "--disable-playwright",
        "--no-auto-lint",
        "--no-suggest-shell-commands",
    ]  # fmt: skip
    if metadata is not None:
        argv += ["--model-metadata-file", str(metadata)]
    return argv + list(extra)


def run_aider(
    layout: Layout,
    server: FakeModelServer,
    prompt: str,
    metadata: Path | None,
    *extra: str,
    argv: list[str] | None = None,
) -> AiderRun:
    key = "sk-test-" + uuid.uuid4().hex
    done = subprocess.run(
        argv or aider_argv(layout, server, prompt, metadata, *extra),
        cwd=layout.worktree,
        env=aider_env(layout, key),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
        timeout=240,
    )
    return AiderRun(done.returncode, done.stdout, done.stderr, requests_with_key(server, key))


@dataclass
class RunningAider:
    """aider in the background, read line by line until it says something."""

    process: subprocess.Popen[str]
    key: str
    seen: list[str]

    def read_until(self, text: str) -> str:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.seen.append(line)
            if text in line:
                return line
        raise AssertionError(f"aider ended without printing {text!r}:\n{''.join(self.seen)}")


@pytest.fixture
def start_aider(
    layout: Layout, fake_model: FakeModelServer, metadata_file: Path
) -> Iterator[Callable[..., RunningAider]]:
    started: list[RunningAider] = []

    def start(prompt: str, *extra: str) -> RunningAider:
        key = "sk-test-" + uuid.uuid4().hex
        process = subprocess.Popen(
            aider_argv(layout, fake_model, prompt, metadata_file, *extra),
            cwd=layout.worktree,
            env=aider_env(layout, key),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        running = RunningAider(process, key, [])
        started.append(running)
        return running

    yield start
    for running in started:
        if running.process.poll() is None:
            running.process.kill()
        running.process.wait(10)
        if running.process.stdout is not None:
            running.process.stdout.close()


def requests_with_key(server: FakeModelServer, key: str) -> list[RecordedRequest]:
    """This run's requests: the server is shared by the session, the key is the run's own."""
    return [
        r for r in server.recorder.snapshot() if r.headers.get("authorization") == f"Bearer {key}"
    ]


def worktree_status(layout: Layout) -> list[str]:
    """Every change in the worktree, untracked and ignored files included."""
    done = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all", "--ignored"],
        cwd=layout.worktree,
        env=ENV,
        capture_output=True,
        text=True,
        check=True,
    )
    return sorted(done.stdout.splitlines())


def aider_tokens(count: int) -> str:
    """How aider prints a token count (aider.utils.format_tokens)."""
    if count < 1000:
        return str(count)
    if count < 10000:
        return f"{count / 1000:.1f}k"
    return f"{round(count / 1000)}k"


def aider_cost(value: float) -> str:
    """How aider prints a cost (format_cost in Coder.calculate_and_show_tokens_and_cost)."""
    if value == 0:
        return "0.00"
    if abs(value) >= 0.01:
        return f"{value:.2f}"
    return f"{value:.{max(2, 2 - int(math.log10(abs(value))))}f}"


def test_aider_version_is_the_pinned_one(layout: Layout) -> None:
    done = subprocess.run(
        [str(agent_binary("aider")), "--version"],
        env=aider_env(layout, "unused"),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "aider 0.86.2\n", "")


def test_a_write_directive_makes_aider_write_the_file_in_whole_format(
    layout: Layout, fake_model: FakeModelServer, metadata_file: Path
) -> None:
    run = run_aider(
        layout, fake_model, "Add a greeting.\nfake: write src/hello.txt hi there", metadata_file
    )

    assert run.returncode == 0, run.stdout + run.stderr
    assert (layout.worktree / "src/hello.txt").read_text() == "hi there\n"
    assert "Model: openai/gpt-4o-mini with whole edit format\n" in run.stdout
    assert "Applied edit to src/hello.txt\n" in run.stdout
    assert run.stderr == ""
    # aider adds a file it creates to the index (empty, then writes it), even with
    # --no-auto-commits.
    assert worktree_status(layout) == ["AM src/hello.txt"]
    [request] = run.requests
    assert request.path == "/v1/chat/completions"
    assert request.body["model"] == "gpt-4o-mini"
    assert "stream" not in request.body


def test_aider_prints_the_tokens_the_server_counted_and_their_cost(
    layout: Layout, fake_model: FakeModelServer, metadata_file: Path
) -> None:
    run = run_aider(layout, fake_model, "fake: write notes.txt one\\ntwo", metadata_file)

    [request] = run.requests
    sent = len(json.dumps(request.body["messages"])) // 4
    tokens = run.tokens()
    assert tokens["sent"] == aider_tokens(sent)
    received = int(tokens["received"])
    cost = aider_cost(sent * INPUT_COST + received * OUTPUT_COST)
    assert (tokens["message"], tokens["session"]) == (cost, cost)
    assert (layout.worktree / "notes.txt").read_text() == "one\ntwo\n"


def test_a_streamed_reply_writes_the_file_and_aider_counts_the_tokens_itself(
    layout: Layout, fake_model: FakeModelServer, metadata_file: Path
) -> None:
    run = run_aider(
        layout, fake_model, "fake: write streamed.txt in pieces", metadata_file, "--stream"
    )

    assert run.returncode == 0, run.stdout + run.stderr
    assert (layout.worktree / "streamed.txt").read_text() == "in pieces\n"
    [request] = run.requests
    # litellm asks for no usage chunk, so the Tokens line is aider's own tiktoken count.
    assert request.body["stream"] is True
    assert "stream_options" not in request.body
    run.tokens()


def test_a_tracked_file_named_in_the_prompt_is_put_in_the_chat_before_the_request(
    layout: Layout, fake_model: FakeModelServer, metadata_file: Path
) -> None:
    run = run_aider(layout, fake_model, "fake: write src/app.txt replaced", metadata_file)

    assert (layout.worktree / "src/app.txt").read_text() == "replaced\n"
    assert worktree_status(layout) == [" M src/app.txt"]
    assert "Applied edit to src/app.txt\n" in run.stdout
    # "Add file to the chat?" answered yes by --yes-always: its subject is printed on its own.
    assert "\nsrc/app.txt\n" in run.stdout.split("Applied edit")[0]
    [request] = run.requests
    chat = json.dumps(request.body["messages"])
    assert json.dumps("src/app.txt\n```\nline 1\nline 2\nline 3\n```\n")[1:-1] in chat


def test_diff_format_creates_a_new_file_and_overwrites_one_given_with_file(
    layout: Layout, fake_model: FakeModelServer, metadata_file: Path
) -> None:
    run = run_aider(
        layout,
        fake_model,
        "fake: write src/new.txt fresh\nfake: write src/app.txt rewritten",
        metadata_file,
        "--edit-format", "diff",
        "--file", "src/app.txt",
    )  # fmt: skip

    assert "Model: openai/gpt-4o-mini with diff edit format\n" in run.stdout
    assert (layout.worktree / "src/new.txt").read_text() == "fresh\n"
    assert (layout.worktree / "src/app.txt").read_text() == "rewritten\n"
    assert worktree_status(layout) == [" M src/app.txt", "AM src/new.txt"]


def test_nothing_changes_nothing_and_still_reports_tokens(
    layout: Layout, fake_model: FakeModelServer, metadata_file: Path
) -> None:
    run = run_aider(layout, fake_model, "Look around.\nfake: nothing", metadata_file)

    assert run.returncode == 0
    assert "\nNothing to do.\n" in run.stdout
    assert "Applied edit" not in run.stdout
    run.tokens()
    assert worktree_status(layout) == []


def test_a_401_exits_0_after_one_request_and_prints_the_authentication_error(
    layout: Layout, fake_model: FakeModelServer, metadata_file: Path
) -> None:
    run = run_aider(layout, fake_model, "fake: fail 401", metadata_file)

    assert run.returncode == 0
    assert run.stderr == ""
    lines = run.stdout.splitlines()
    [error] = [line for line in lines if line.startswith("litellm.AuthenticationError: ")]
    assert error.startswith(AUTH_ERROR)
    assert lines[lines.index(error) + 1] == AUTH_HINT
    assert "https://platform.openai.com/account/api-keys" in lines  # the URL it offered to open
    assert "Tokens:" not in run.stdout
    assert len(run.requests) == 1  # not retried
    assert worktree_status(layout) == []


def test_a_500_is_retried_with_a_message_plait_can_see_at_once(
    start_aider: Callable[..., RunningAider],
) -> None:
    aider = start_aider("fake: fail 500")

    assert aider.read_until("litellm.") == SERVER_ERROR + "\n"
    assert aider.read_until(DOWN_HINT) == DOWN_HINT + "\n"
    assert aider.read_until("Retrying") == "Retrying in 0.2 seconds...\n"


@pytest.mark.slow
def test_a_persistent_500_exits_0_after_nine_attempts_and_a_minute_of_backoff(
    layout: Layout, fake_model: FakeModelServer, metadata_file: Path, no_sdk_retries: Path
) -> None:
    run = run_aider(
        layout, fake_model, "fake: fail 500", metadata_file,
        "--model-settings-file", str(no_sdk_retries),
    )  # fmt: skip

    assert run.returncode == 0
    assert len(run.requests) == 9  # aider's attempts; without max_retries 0, 3 requests each
    retries = re.findall(r"^Retrying in ([\d.]+) seconds\.\.\.$", run.stdout, re.M)
    assert retries == ["0.2", "0.5", "1.0", "2.0", "4.0", "8.0", "16.0", "32.0"]
    assert run.stdout.count(SERVER_ERROR + "\n" + DOWN_HINT + "\n") == 9
    assert run.stdout.endswith(SERVER_ERROR + "\n" + DOWN_HINT + "\n\n")
    assert "Tokens:" not in run.stdout
    assert worktree_status(layout) == []


def test_a_hang_ends_in_a_timeout_that_is_retried_like_a_500(
    start_aider: Callable[..., RunningAider],
) -> None:
    aider = start_aider("fake: hang", "--timeout", "1")

    assert aider.read_until("litellm.") == TIMEOUT_ERROR + "\n"
    hint = (
        "The API provider timed out without returning a response. They may be down or overloaded."
    )
    assert aider.read_until("timed out without") == hint + "\n"
    assert aider.read_until("Retrying") == "Retrying in 0.2 seconds...\n"


def test_a_resolution_turn_removes_the_markers_of_the_files_given_with_file(
    layout: Layout, fake_model: FakeModelServer, metadata_file: Path
) -> None:
    wt = layout.worktree
    identity = ["-c", "user.name=T", "-c", "user.email=t@example.invalid"]
    (wt / "src/app.txt").write_text("line 1\nours\nline 3\n")
    git(wt, *identity, "commit", "--quiet", "-am", "ours")
    git(layout.repo, "checkout", "--quiet", "-b", "theirs")
    (layout.repo / "src/app.txt").write_text("line 1\ntheirs\nline 3\n")
    git(layout.repo, *identity, "commit", "--quiet", "-am", "theirs")
    merge = subprocess.run(
        ["git", *identity, "merge", "--quiet", "theirs"],
        cwd=wt,
        env=ENV,
        capture_output=True,
        check=False,
    )
    assert merge.returncode == 1
    assert "<<<<<<< HEAD\n" in (wt / "src/app.txt").read_text()

    prompt = "Resolve the merge conflicts.\n\nConflicted files:\n- src/app.txt\n"
    run = run_aider(layout, fake_model, prompt, metadata_file, "--file", "src/app.txt")

    assert (wt / "src/app.txt").read_text() == "line 1\nours\ntheirs\nline 3\n"
    assert "Applied edit to src/app.txt\n" in run.stdout
    assert worktree_status(layout) == ["UU src/app.txt"]  # plait adds and commits


def test_with_the_recommended_flags_no_aider_file_lands_in_the_worktree_or_the_repo(
    layout: Layout, fake_model: FakeModelServer, metadata_file: Path
) -> None:
    run = run_aider(layout, fake_model, "fake: write out.txt x", metadata_file)

    assert worktree_status(layout) == ["AM out.txt"]
    assert sorted(p.name for p in layout.state.iterdir()) == [
        "chat.history.md",
        "input.history",
        "llm.history",
    ]
    assert "fake: write out.txt x" in (layout.state / "chat.history.md").read_text()
    home = sorted(str(p.relative_to(layout.home)) for p in layout.home.rglob("*") if p.is_file())
    assert home == [".aider/analytics.json", ".aider/installs.json"]
    assert "[user]" not in (layout.repo / ".git/config").read_text()
    assert run.returncode == 0


def test_without_those_flags_aider_leaves_history_files_a_tags_cache_and_a_gitignore_edit(
    layout: Layout, fake_model: FakeModelServer
) -> None:
    argv = [
        str(agent_binary("aider")),
        "--model", MODEL,
        "--openai-api-base", fake_model.url + "/v1",
        "--message", "fake: write out.txt x",
        "--yes-always",
        "--no-stream",
        "--no-auto-commits",
        "--no-dirty-commits",
    ]  # fmt: skip
    run = run_aider(layout, fake_model, "", None, argv=argv)

    assert worktree_status(layout) == [
        " M .gitignore",
        "!! .aider.chat.history.md",
        "!! .aider.input.history",
        "!! .aider.tags.cache.v4/cache.db",
        "AM out.txt",
    ]
    assert (layout.worktree / ".gitignore").read_text() == ".env\nbuild/\n.aider*\n"
    # Without --model-metadata-file aider fetches litellm's price list from GitHub (and says so
    # on stdout when it cannot), caching it, or an empty {}, in HOME for a day.
    assert (layout.home / ".aider/caches/model_prices_and_context_window.json").exists()
    assert "Warning: Input is not a terminal (fd=0).\n" in run.stderr
    run.tokens()


def test_without_a_git_identity_aider_writes_a_placeholder_one_into_the_repository_config(
    layout: Layout, fake_model: FakeModelServer, metadata_file: Path
) -> None:
    argv = aider_argv(layout, fake_model, "fake: nothing", metadata_file)
    env = {k: v for k, v in aider_env(layout, "sk-x").items() if not k.startswith("GIT_CONFIG")}
    done = subprocess.run(
        argv, cwd=layout.worktree, env=env, stdin=subprocess.DEVNULL,
        capture_output=True, text=True, check=False, timeout=240,
    )  # fmt: skip

    assert 'Update git name with: git config user.name "Your Name"' in done.stdout
    config = (layout.repo / ".git/config").read_text()  # the main repository's, shared
    assert "[user]\n\tname = Your Name\n\temail = you@example.com\n" in config


def test_a_dotenv_in_the_worktree_overrides_the_environment_but_not_the_flags(
    layout: Layout, fake_model: FakeModelServer, metadata_file: Path
) -> None:
    (layout.worktree / ".env").write_text(
        "OPENAI_API_BASE=http://127.0.0.1:9/v1\nOPENAI_API_KEY=sk-from-the-repository\n"
    )
    key = "sk-test-" + uuid.uuid4().hex
    argv = aider_argv(layout, fake_model, "fake: nothing", metadata_file, "--openai-api-key", key)
    env = aider_env(layout, "sk-ignored")
    done = subprocess.run(
        argv, cwd=layout.worktree, env=env, stdin=subprocess.DEVNULL,
        capture_output=True, text=True, check=False, timeout=240,
    )  # fmt: skip

    assert "\nNothing to do.\n" in done.stdout
    assert len(requests_with_key(fake_model, key)) == 1


def test_restore_chat_history_sends_the_previous_run_again_command_line_and_all(
    layout: Layout, fake_model: FakeModelServer, metadata_file: Path
) -> None:
    run_aider(layout, fake_model, "Task: remember PINEAPPLE.\nfake: nothing", metadata_file)
    run = run_aider(
        layout, fake_model, "Next turn.\nfake: nothing", metadata_file, "--restore-chat-history"
    )

    assert "Restored previous conversation history.\n" in run.stdout
    [request] = run.requests
    messages = request.body["messages"]
    user = [m["content"] for m in messages if m["role"] == "user"]
    assistant = [m["content"] for m in messages if m["role"] == "assistant"]
    assert any("Task: remember PINEAPPLE." in text for text in user)
    # The history file logs the command line as a quote, whose continuation lines (the rest of
    # a multi-line --message, then the other flags) come back as an assistant message.
    assert any(text.startswith("fake: nothing --yes-always") for text in assistant)


def test_a_url_in_the_prompt_is_fetched_into_the_chat_unless_no_detect_urls(
    layout: Layout, fake_model: FakeModelServer, metadata_file: Path
) -> None:
    page = f"/docs/{uuid.uuid4().hex}"
    prompt = f"See {fake_model.url}{page} for the spec.\nfake: nothing"
    recommended = aider_argv(layout, fake_model, prompt, metadata_file)
    detecting = [arg for arg in recommended if arg != "--no-detect-urls"]

    run_aider(layout, fake_model, prompt, metadata_file, argv=recommended)
    assert [r for r in fake_model.recorder.snapshot() if r.path == page] == []

    # --yes-always says yes to "Add URL to the chat?"; without --disable-playwright it would
    # also say yes to "Install playwright?" (pip install, then playwright install --with-deps).
    run = run_aider(layout, fake_model, prompt, metadata_file, argv=detecting)
    assert f"Scraping {fake_model.url}{page}...\n" in run.stdout
    [fetched] = [r for r in fake_model.recorder.snapshot() if r.path == page]
    assert fetched.method == "GET"


def test_auto_lint_sends_a_broken_python_file_back_to_the_model_three_more_times(
    layout: Layout, fake_model: FakeModelServer, metadata_file: Path
) -> None:
    prompt = "fake: write broken.py def f(:"
    argv = [
        a for a in aider_argv(layout, fake_model, prompt, metadata_file) if a != "--no-auto-lint"
    ]

    run = run_aider(layout, fake_model, prompt, metadata_file, argv=argv)

    assert len(run.requests) == 4
    # Lint output after each of the 4 replies; the last one is not sent.
    assert run.stdout.count("# Fix any errors below, if possible.\n") == 4
    assert run.stdout.rstrip("\n").endswith("Only 3 reflections allowed, stopping.")
    assert len(TOKENS_LINE.findall(run.stdout)) == 4  # one per request; "session" adds up
    assert run.returncode == 0

    quiet = run_aider(layout, fake_model, prompt, metadata_file)
    assert len(quiet.requests) == 1
    assert "Fix any errors" not in quiet.stdout
