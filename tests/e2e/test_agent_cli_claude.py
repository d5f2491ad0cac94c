"""The real Claude Code CLI against the fake Anthropic API: what plait can rely on.

Each test runs `claude -p` as plait does (a subprocess, stdin from /dev/null, as root, in a git
worktree under `<repo>/.git/plait-worktrees/`, with permissions bypassed) with its own HOME,
CLAUDE_CONFIG_DIR and CLAUDE_CODE_TMPDIR, so nothing touches the real ~/.claude, and reads
the `--output-format stream-json` lines it prints. The model's reply is steered by the
`fake:` directives in the prompt (tests/fakemodel/script.py).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.fakemodel.agents import agent_binary
from tests.fakemodel.server import FakeModelServer, RecordedRequest
from tests.gitrepo import git, make_repo

MODEL = "claude-sonnet-4-5"
API_KEY = "sk-ant-fake-plait-tests"
# Every variable that could point Claude Code elsewhere or change what it does.
_INHERITED_NOT = ("ANTHROPIC_", "CLAUDE_", "GIT_", "OTEL_", "DISABLE_", "IS_SANDBOX", "API_TIMEOUT")


@dataclass(frozen=True)
class Run:
    """One `claude -p` run: exit status, the stream-json lines, stderr."""

    code: int
    lines: list[dict[str, Any]]
    stderr: str

    def of(self, kind: str, subtype: str | None = None) -> list[dict[str, Any]]:
        return [
            line
            for line in self.lines
            if line.get("type") == kind and (subtype is None or line.get("subtype") == subtype)
        ]

    @property
    def init(self) -> dict[str, Any]:
        (init,) = self.of("system", "init")
        return init

    @property
    def result(self) -> dict[str, Any]:
        (result,) = self.of("result")
        assert self.lines[-1] is result, "the result is the last line"
        return result

    @property
    def session_id(self) -> str:
        session: str = self.result["session_id"]
        return session

    def tool_uses(self) -> list[dict[str, Any]]:
        return [
            block
            for line in self.of("assistant")
            for block in line["message"]["content"]
            if block.get("type") == "tool_use"
        ]

    def explain(self) -> str:
        return f"exit {self.code}\nstderr: {self.stderr}\n" + "\n".join(map(json.dumps, self.lines))


@dataclass(frozen=True)
class Claude:
    """Claude Code with a home of its own, pointed at the fake model."""

    fake: FakeModelServer
    home: Path
    config_dir: Path
    tmp_dir: Path

    def env(self, extra: dict[str, str | None]) -> dict[str, str]:
        """The environment plait gives Claude Code; `extra` adds to it (None: leave it out)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(_INHERITED_NOT)}
        env.update(
            {
                "HOME": str(self.home),
                "CLAUDE_CONFIG_DIR": str(self.config_dir),
                "CLAUDE_CODE_TMPDIR": str(self.tmp_dir),
                "ANTHROPIC_BASE_URL": self.fake.url,
                "ANTHROPIC_API_KEY": API_KEY,
                # Root may bypass permissions only in a declared sandbox.
                "IS_SANDBOX": "1",
                # No update check, telemetry, error reports or api.anthropic.com look-ups.
                "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
                "DISABLE_AUTOUPDATER": "1",
                "DISABLE_TELEMETRY": "1",
                "DISABLE_ERROR_REPORTING": "1",
            }
        )
        for name, value in extra.items():
            if value is None:
                env.pop(name, None)
            else:
                env[name] = value
        return env

    def run(
        self, cwd: Path, prompt: str, *args: str, env: dict[str, str | None] | None = None
    ) -> Run:
        argv = [
            str(agent_binary("claude")),
            "-p",
            prompt,
            "--output-format",
            "stream-json",
            "--verbose",
            "--model",
            MODEL,
            "--dangerously-skip-permissions",
            *args,
        ]
        done = subprocess.run(
            argv,
            cwd=cwd,
            env=self.env(env or {}),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=False,
            timeout=90,
        )
        lines = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
        return Run(done.returncode, lines, done.stderr)

    def requests(self, run: Run) -> list[RecordedRequest]:
        """The Messages API requests of this run's session, in order."""
        return [
            r
            for r in self.fake.recorder.snapshot()
            if r.path == "/v1/messages"
            and r.headers.get("x-claude-code-session-id") == run.session_id
        ]


@pytest.fixture
def claude(
    fake_model: FakeModelServer, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> Claude:
    home = tmp_path / "home"
    home.mkdir()
    # Short: Claude Code puts a unix socket in it (at most 108 bytes a path).
    tmp_dir = tmp_path_factory.mktemp("cc")
    return Claude(fake_model, home, tmp_path / "claude-config", tmp_dir)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo")


def add_worktree(repo: Path, path: Path) -> Path:
    git(repo, "worktree", "add", "--quiet", "-b", path.name, str(path))
    return path


@pytest.fixture
def worktree(repo: Path) -> Path:
    """A task worktree where plait puts it by default: inside the repository's .git."""
    return add_worktree(repo, repo / ".git" / "plait-worktrees" / "task")


def changes(worktree: Path) -> list[str]:
    return git(worktree, "status", "--porcelain", "--untracked-files=all").splitlines()


@pytest.mark.parametrize("where", ["inside .git", "outside the repository"])
def test_claude_writes_the_file_through_its_bash_tool_in_a_worktree_inside_or_outside_git(
    claude: Claude, repo: Path, where: str
) -> None:
    if where == "inside .git":
        place = repo / ".git" / "plait-worktrees" / "task"
    else:
        place = repo.parent / "worktrees" / "task"
    worktree = add_worktree(repo, place)

    run = claude.run(worktree, "Add the greeting.\nfake: write notes/hello.txt hello world")

    assert run.code == 0, run.explain()
    assert (worktree / "notes" / "hello.txt").read_text() == "hello world\n"
    assert changes(worktree) == ["?? notes/hello.txt"]
    (tool_use,) = run.tool_uses()
    assert tool_use["name"] == "Bash"
    (tool_result,) = run.of("user")
    assert tool_result["message"]["content"][0]["is_error"] is False


def test_a_successful_run_ends_with_a_result_carrying_cost_usage_and_the_session_id(
    claude: Claude, worktree: Path
) -> None:
    run = claude.run(worktree, "fake: write a.txt A")

    assert run.code == 0, run.explain()
    assert run.init["session_id"] == run.session_id
    assert run.init["model"] == MODEL
    assert run.init["permissionMode"] == "bypassPermissions"
    assert run.init["cwd"] == str(worktree)
    assert run.init["apiKeySource"] == "ANTHROPIC_API_KEY"
    result = run.result
    assert result["subtype"] == "success"
    assert result["is_error"] is False
    assert result["result"] == "Done."
    assert result["stop_reason"] == "end_turn"
    assert result["num_turns"] == 2
    assert result["total_cost_usd"] > 0
    assert result["usage"]["input_tokens"] > 0
    assert result["usage"]["output_tokens"] > 0
    assert result["usage"]["cache_read_input_tokens"] > 0
    assert result["modelUsage"][MODEL]["costUSD"] == result["total_cost_usd"]
    assert result["permission_denials"] == []
    assert re.fullmatch(r"[0-9a-f-]{36}", run.session_id)


def test_claude_sends_the_key_the_model_and_the_bash_tool_to_the_base_url(
    claude: Claude, worktree: Path
) -> None:
    run = claude.run(worktree, "fake: write a.txt A")

    assert run.code == 0, run.explain()
    first, second = claude.requests(run)
    for request in (first, second):
        assert request.headers["x-api-key"] == API_KEY
        assert request.body["model"] == MODEL
        assert request.body["stream"] is True
    bash = next(t for t in first.body["tools"] if t["name"] == "Bash")
    assert bash["input_schema"]["required"] == ["command"]
    newest = second.body["messages"][-1]["content"]
    assert [block["type"] for block in newest] == ["tool_result"]


def test_claude_keeps_its_session_files_in_claude_config_dir_and_none_in_home_or_worktree(
    claude: Claude, worktree: Path
) -> None:
    run = claude.run(worktree, "fake: nothing")

    assert run.code == 0, run.explain()
    assert list(claude.config_dir.glob(f"projects/*/{run.session_id}.jsonl"))
    assert (claude.config_dir / ".claude.json").exists()
    assert list(claude.home.iterdir()) == []
    assert changes(worktree) == []


def test_a_prompt_that_asks_for_nothing_is_answered_in_words_and_changes_nothing(
    claude: Claude, worktree: Path
) -> None:
    run = claude.run(worktree, "Look around.\nfake: nothing")

    assert run.code == 0, run.explain()
    assert run.result["is_error"] is False
    assert run.result["result"] == "Nothing to do."
    assert run.result["num_turns"] == 1
    assert run.tool_uses() == []
    assert changes(worktree) == []


def test_a_rejected_api_key_ends_with_an_error_result_naming_it_and_exit_status_1(
    claude: Claude, worktree: Path
) -> None:
    # Claude Code retries a 401 like any failure (10 times, minutes): allow it none.
    run = claude.run(
        worktree, "fake: fail 401\nfake: write a.txt A", env={"CLAUDE_CODE_MAX_RETRIES": "0"}
    )

    assert run.code == 1, run.explain()
    result = run.result
    assert result["is_error"] is True
    assert result["api_error_status"] == 401
    assert result["terminal_reason"] == "api_error"
    assert result["result"] == "Invalid API key · Fix external API key"
    assert result["total_cost_usd"] == 0
    assert len(claude.requests(run)) == 1
    assert changes(worktree) == []


def test_a_failing_provider_is_retried_claude_code_max_retries_times_then_reported(
    claude: Claude, worktree: Path
) -> None:
    run = claude.run(worktree, "fake: fail 500", env={"CLAUDE_CODE_MAX_RETRIES": "1"})

    assert run.code == 1, run.explain()
    (retry,) = run.of("system", "api_retry")
    assert retry["attempt"] == 1
    assert retry["max_retries"] == 1
    assert retry["error_status"] == 500
    assert run.result["is_error"] is True
    assert run.result["api_error_status"] == 500
    assert run.result["result"].startswith("API Error: 500 Internal server error.")
    assert len(claude.requests(run)) == 2


def test_a_model_that_never_answers_times_out_after_api_timeout_ms(
    claude: Claude, worktree: Path
) -> None:
    run = claude.run(
        worktree, "fake: hang", env={"API_TIMEOUT_MS": "1000", "CLAUDE_CODE_MAX_RETRIES": "0"}
    )

    assert run.code == 1, run.explain()
    assert run.result["is_error"] is True
    assert run.result["result"].startswith("Request timed out.")
    assert "API_TIMEOUT_MS above 1000" in run.result["result"]


def test_resuming_a_session_sends_the_earlier_conversation_and_continues_it(
    claude: Claude, worktree: Path
) -> None:
    first = claude.run(worktree, "First task.\nfake: write a.txt A")
    assert first.code == 0, first.explain()
    earlier = len(claude.requests(first))

    second = claude.run(worktree, "Second task.\nfake: write b.txt B", "--resume", first.session_id)

    assert second.code == 0, second.explain()
    assert second.session_id == first.session_id
    assert second.result["is_error"] is False
    assert (worktree / "b.txt").read_text() == "B\n"
    # The same session id, so the resumed run's requests follow the first run's.
    opening = claude.requests(second)[earlier]
    roles = [m["role"] for m in opening.body["messages"] if m["role"] != "system"]
    assert roles == ["user", "assistant", "user", "assistant", "user"]
    sent = json.dumps(opening.body["messages"])
    assert "First task." in sent
    assert "Done." in sent


def test_after_a_resume_total_cost_usd_counts_the_whole_session_and_usage_only_this_run(
    claude: Claude, worktree: Path
) -> None:
    first = claude.run(worktree, "fake: nothing")
    assert first.code == 0, first.explain()

    second = claude.run(worktree, "fake: nothing", "--resume", first.session_id)

    assert second.code == 0, second.explain()
    this_run = second.result["model_usage_since_last_result"][MODEL]
    assert this_run["costUSD"] > 0
    assert second.result["total_cost_usd"] == pytest.approx(
        first.result["total_cost_usd"] + this_run["costUSD"]
    )
    assert second.result["modelUsage"][MODEL]["costUSD"] == second.result["total_cost_usd"]
    assert second.result["usage"]["input_tokens"] == this_run["inputTokens"]
    assert second.result["usage"]["output_tokens"] == this_run["outputTokens"]


def test_a_conflict_resolution_prompt_removes_the_markers_and_keeps_both_sides(
    claude: Claude, worktree: Path
) -> None:
    (worktree / "a.txt").write_text(
        "top\n<<<<<<< HEAD\nours\n=======\ntheirs\n>>>>>>> other\nbottom\n"
    )
    prompt = "Resolve the merge conflicts.\n\nConflicted files:\n- a.txt\n"

    run = claude.run(worktree, prompt)

    assert run.code == 0, run.explain()
    assert (worktree / "a.txt").read_text() == "top\nours\ntheirs\nbottom\n"


def test_as_root_claude_refuses_to_skip_permissions_unless_is_sandbox_is_set(
    claude: Claude, worktree: Path
) -> None:
    if os.geteuid() != 0:
        pytest.skip("the refusal is for root only")

    run = claude.run(worktree, "fake: write a.txt A", env={"IS_SANDBOX": None})

    assert run.code == 1
    assert run.lines == []
    assert run.stderr.strip() == (
        "--dangerously-skip-permissions cannot be used with root/sudo privileges"
        " for security reasons"
    )
    assert changes(worktree) == []


def test_claude_version_prints_the_version_and_the_product_name(claude: Claude) -> None:
    done = subprocess.run(
        [str(agent_binary("claude")), "--version"],
        env=claude.env({}),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )

    assert done.returncode == 0, done.stderr
    assert re.fullmatch(r"\d+\.\d+\.\d+ \(Claude Code\)\n", done.stdout)


def post_messages(fake: FakeModelServer, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(
        fake.url + "/v1/messages?beta=true",
        data=json.dumps(body).encode(),
        headers={"content-type": "application/json", "x-api-key": API_KEY},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        reply: dict[str, Any] = json.load(response)
    return reply


def test_the_fake_runs_writes_only_for_a_request_that_offers_the_bash_tool(
    fake_model: FakeModelServer,
) -> None:
    """Side requests (titles, summaries: no tools) must never act on the prompt's directives."""
    asks = {"role": "user", "content": [{"type": "text", "text": "fake: write a.txt A"}]}
    side = {"model": "claude-haiku-4-5", "max_tokens": 512, "messages": [asks], "stream": False}
    main = {**side, "model": MODEL, "tools": [{"name": "Bash", "input_schema": {}}]}

    side_reply = post_messages(fake_model, side)
    main_reply = post_messages(fake_model, main)

    assert side_reply["content"] == [{"type": "text", "text": "Nothing to do."}]
    assert side_reply["stop_reason"] == "end_turn"
    assert side_reply["model"] == "claude-haiku-4-5"
    assert [block["type"] for block in main_reply["content"]] == ["text", "tool_use"]
    assert main_reply["content"][1]["name"] == "Bash"
    assert main_reply["stop_reason"] == "tool_use"
    assert main_reply["usage"]["output_tokens"] > 0
