"""The real Codex CLI (`codex exec`) against the fake Responses API: the contract plait relies on.

Each test runs the installed `codex` in a subprocess, in a git worktree that lives outside its
repository (as plait's do), with CODEX_HOME and HOME in the test's temporary directory and the
provider set with `-c` overrides only. See /work/findings/codex.md for what these pin down.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakemodel.agents import agent_binary
from tests.fakemodel.openai_responses import DONE_TEXT, NOTHING_TEXT
from tests.fakemodel.server import FakeModelServer, RecordedRequest
from tests.gitrepo import git, make_repo

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

# A model codex knows: an unknown name works too, but adds a "Model metadata ... not found"
# item of type `error` to every stream. The fake ignores the name.
MODEL = "gpt-5.5"
KEY_VAR = "PLAIT_FAKE_OPENAI_KEY"
KEY = "sk-fake-codex-contract"
RUN_TIMEOUT = 60


@dataclass(frozen=True)
class Place:
    """Where a run happens: a repository, a worktree of it outside it, codex's own home."""

    repo: Path
    worktree: Path
    codex_home: Path
    home: Path


@dataclass(frozen=True)
class Ran:
    code: int
    events: list[dict[str, Any]]
    err: str
    requests: list[RecordedRequest] = field(default_factory=list)

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("type") == kind]

    def items(self, kind: str) -> list[dict[str, Any]]:
        return [e["item"] for e in self.of("item.completed") if e["item"].get("type") == kind]

    @property
    def thread_id(self) -> str:
        (started,) = self.of("thread.started")
        thread_id: str = started["thread_id"]
        return thread_id

    def explain(self) -> str:
        return f"exit {self.code}\n{json.dumps(self.events, indent=1)}\n{self.err}"


@pytest.fixture
def place(tmp_path: Path) -> Place:
    repo = make_repo(tmp_path / "repo")
    worktree = tmp_path / "worktrees" / "task-1"
    git(repo, "worktree", "add", "--quiet", "-b", "task-1", str(worktree))
    codex_home, home = tmp_path / "codex-home", tmp_path / "home"
    codex_home.mkdir()
    home.mkdir()
    return Place(repo, worktree, codex_home, home)


@pytest.fixture
def codex() -> Path:
    return agent_binary("codex")


def provider_overrides(server: FakeModelServer, *extra: str) -> list[str]:
    """The `-c` overrides that point codex at the fake, with retries off and no other network."""
    settings = [
        'model_provider="fake"',
        f'model="{MODEL}"',
        'model_providers.fake.name="fake"',
        f'model_providers.fake.base_url="{server.url}/v1"',
        f'model_providers.fake.env_key="{KEY_VAR}"',
        'model_providers.fake.wire_api="responses"',
        "model_providers.fake.request_max_retries=0",
        "model_providers.fake.stream_max_retries=0",
        "analytics.enabled=false",
        "features.plugins=false",
        "check_for_update_on_startup=false",
        # On by default: a refused connection is retried for ever, whatever the retry settings.
        "features.unbounded_connection_retries=false",
        # The tests' directories are under /tmp, which workspace-write makes writable by default.
        "sandbox_workspace_write.exclude_slash_tmp=true",
        "sandbox_workspace_write.exclude_tmpdir_env_var=true",
        *extra,
    ]
    return [arg for setting in settings for arg in ("-c", setting)]


def own_tools() -> str:
    """Codex's own tool directory (its bubblewrap), as plait puts it first on PATH: its
    sandbox takes the first `bwrap` on PATH, and Debian 12's 0.8 cannot run it."""
    codex = Path(os.path.realpath(agent_binary("codex")))
    [resources] = sorted(codex.parent.glob("../../codex-linux-*/vendor/*/codex-resources"))
    return str(resources.resolve())


def environment(place: Place) -> dict[str, str]:
    """Only what codex needs: nothing of the real user's (no OPENAI_API_KEY, no ~/.codex)."""
    return {
        "PATH": own_tools() + os.pathsep + os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(place.home),
        "CODEX_HOME": str(place.codex_home),
        "LANG": "C.UTF-8",
        KEY_VAR: KEY,
    }


def exec_argv(codex: Path, place: Place, server: FakeModelServer, *extra: str) -> list[str]:
    return [
        str(codex), "exec", "--json", "--sandbox", "workspace-write", "-C", str(place.worktree),
        *provider_overrides(server, *extra),
    ]  # fmt: skip


def parse_events(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def requests_of(server: FakeModelServer, thread_id: str) -> list[RecordedRequest]:
    """What codex sent the fake for this thread (the server is shared by the whole session)."""
    return [r for r in server.recorder.snapshot() if r.headers.get("session-id") == thread_id]


def run(argv: list[str], place: Place, server: FakeModelServer, cwd: Path | None = None) -> Ran:
    done = subprocess.run(
        argv,
        cwd=cwd or place.worktree,
        env=environment(place),
        stdin=subprocess.DEVNULL,  # codex exec reads a piped stdin to EOF before it starts
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )
    events = parse_events(done.stdout)
    started = [e for e in events if e.get("type") == "thread.started"]
    sent = requests_of(server, started[0]["thread_id"]) if started else []
    return Ran(done.returncode, events, done.stderr, sent)


@contextmanager
def running(argv: list[str], place: Place) -> Iterator[subprocess.Popen[str]]:
    """codex in the background, its events on a pipe; killed (its whole group) on the way out."""
    process = subprocess.Popen(
        argv,
        cwd=place.worktree,
        env=environment(place),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.communicate()


def exec_codex(codex: Path, place: Place, server: FakeModelServer, prompt: str, *extra: str) -> Ran:
    return run([*exec_argv(codex, place, server, *extra), prompt], place, server)


def user_texts(body: dict[str, Any]) -> list[str]:
    return [
        part["text"]
        for item in body["input"]
        if item.get("type") == "message" and item.get("role") == "user"
        for part in item["content"]
        if part.get("type") == "input_text"
    ]


def command_outputs(ran: Ran) -> list[str]:
    """The shell outputs codex handed back to the model, in the order it did."""
    last = ran.requests[-1].body["input"] if ran.requests else []
    return [str(i["output"]) for i in last if i.get("type") == "function_call_output"]


def changed_files(worktree: Path) -> list[str]:
    return git(worktree, "status", "--porcelain", "--ignored", "--untracked-files=all").splitlines()


def test_codex_version_prints_codex_cli_and_the_version(codex: Path, place: Place) -> None:
    done = subprocess.run(
        [str(codex), "--version"],
        env=environment(place),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=True,
    )

    assert re.fullmatch(r"codex-cli \d+\.\d+\.\d+\n", done.stdout), done.stdout


def test_full_auto_is_no_longer_a_flag_of_codex_exec(codex: Path, place: Place) -> None:
    done = subprocess.run(
        [str(codex), "exec", "--full-auto", "fake: nothing"],
        env=environment(place),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )

    assert done.returncode == 2
    assert "unexpected argument '--full-auto' found" in done.stderr
    assert done.stdout == ""


def test_a_write_directive_edits_the_worktree_under_workspace_write(
    codex: Path, place: Place, fake_model: FakeModelServer
) -> None:
    ran = exec_codex(codex, place, fake_model, "fake: write notes/a.txt hello from codex")

    assert ran.code == 0, ran.explain()
    assert (place.worktree / "notes" / "a.txt").read_text() == "hello from codex\n"
    (command,) = ran.items("command_execution")
    assert command["status"] == "completed"
    assert command["exit_code"] == 0
    assert [m["text"] for m in ran.items("agent_message")] == [DONE_TEXT]
    # Two model requests: the turn, then the turn with the command's output.
    assert len(ran.requests) == 2
    first = ran.requests[0]
    assert first.headers["authorization"] == f"Bearer {KEY}"
    assert first.body["model"] == MODEL
    assert "exec_command" in {tool.get("name") for tool in first.body["tools"]}
    assert [i["type"] for i in ran.requests[1].body["input"]][-2:] == [
        "function_call",
        "function_call_output",
    ]


def test_the_json_stream_of_a_success_names_the_thread_and_counts_tokens(
    codex: Path, place: Place, fake_model: FakeModelServer
) -> None:
    ran = exec_codex(codex, place, fake_model, "fake: write a.txt one")

    assert ran.code == 0, ran.explain()
    kinds = [e["type"] for e in ran.events]
    assert kinds[0] == "thread.started"
    assert re.fullmatch(r"[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}", ran.thread_id)
    assert kinds[1] == "turn.started"
    assert kinds[-1] == "turn.completed"
    assert "error" not in kinds
    assert "turn.failed" not in kinds
    usage = ran.of("turn.completed")[0]["usage"]
    assert usage["input_tokens"] > 0
    assert usage["output_tokens"] > 0
    assert {"cached_input_tokens", "reasoning_output_tokens"} <= usage.keys()
    # Every request of the thread carries its id.
    assert all(r.headers.get("thread-id") == ran.thread_id for r in ran.requests)


def test_codex_keeps_its_session_in_codex_home_and_adds_nothing_to_the_worktree(
    codex: Path, place: Place, fake_model: FakeModelServer
) -> None:
    ran = exec_codex(codex, place, fake_model, "fake: write a.txt one")

    assert ran.code == 0, ran.explain()
    rollouts = list((place.codex_home / "sessions").glob(f"*/*/*/rollout-*-{ran.thread_id}.jsonl"))
    assert len(rollouts) == 1, list(place.codex_home.rglob("*"))
    first = json.loads(rollouts[0].read_text().splitlines()[0])
    assert first["type"] == "session_meta"
    assert changed_files(place.worktree) == ["?? a.txt"]
    assert list(place.home.iterdir()) == []


@pytest.mark.parametrize("target", ["main checkout", "worktree git dir"])
def test_workspace_write_refuses_writes_outside_the_worktree_and_into_its_git_metadata(
    codex: Path, place: Place, fake_model: FakeModelServer, target: str
) -> None:
    admin = Path(git(place.worktree, "rev-parse", "--absolute-git-dir"))  # main/.git/worktrees/…
    outside = place.repo / "escaped.txt" if target == "main checkout" else admin / "escaped"

    ran = exec_codex(codex, place, fake_model, f"fake: write in.txt yes\nfake: write {outside} no")

    assert ran.code == 0, ran.explain()  # the model saw the command fail and answered
    assert f"{outside}: Read-only file system" in command_outputs(ran)[-1]
    assert not outside.exists()
    assert (place.worktree / "in.txt").read_text() == "yes\n"
    # A command the sandbox stopped often leaves no command_execution item in --json (seen
    # both ways under load): only the model's input is sure to show it, so plait cannot
    # rely on the event stream to notice sandbox denials.


def test_a_missing_key_variable_fails_the_turn_before_any_request(
    codex: Path, place: Place, fake_model: FakeModelServer
) -> None:
    ran = exec_codex(
        codex,
        place,
        fake_model,
        "fake: nothing",
        'model_providers.fake.env_key="PLAIT_NO_SUCH_KEY"',
    )

    assert ran.code == 1, ran.explain()
    (failed,) = ran.of("turn.failed")
    assert failed["error"]["message"] == "Missing environment variable: `PLAIT_NO_SUCH_KEY`."
    assert ran.requests == []


def test_fake_nothing_answers_in_words_and_changes_nothing(
    codex: Path, place: Place, fake_model: FakeModelServer
) -> None:
    ran = exec_codex(codex, place, fake_model, "Look around.\nfake: nothing")

    assert ran.code == 0, ran.explain()
    assert ran.items("command_execution") == []
    assert [m["text"] for m in ran.items("agent_message")] == [NOTHING_TEXT]
    assert changed_files(place.worktree) == []
    assert len(ran.requests) == 1


def test_a_401_fails_the_turn_with_the_providers_message_and_exit_status_1(
    codex: Path, place: Place, fake_model: FakeModelServer
) -> None:
    ran = exec_codex(codex, place, fake_model, "fake: fail 401\nfake: write a.txt x")

    assert ran.code == 1, ran.explain()
    kinds = [e["type"] for e in ran.events]
    assert kinds == ["thread.started", "turn.started", "error", "turn.failed"], kinds
    message = ran.of("turn.failed")[0]["error"]["message"]
    assert message.startswith("unexpected status 401 Unauthorized: Incorrect API key provided")
    assert ran.of("error")[0]["message"] == message
    assert len(ran.requests) == 1
    assert changed_files(place.worktree) == []


def test_a_500_is_retried_request_max_retries_times_then_fails_the_turn(
    codex: Path, place: Place, fake_model: FakeModelServer
) -> None:
    ran = exec_codex(
        codex, place, fake_model, "fake: fail 500", "model_providers.fake.request_max_retries=2"
    )

    assert ran.code == 1, ran.explain()
    assert len(ran.requests) == 3  # the request and its two retries; no stream retry
    (failed,) = ran.of("turn.failed")
    assert failed["error"]["message"]  # codex's own words: the 500's body is not shown


def test_a_stream_retry_repeats_the_whole_request_and_says_reconnecting(
    codex: Path, place: Place, fake_model: FakeModelServer
) -> None:
    ran = exec_codex(
        codex, place, fake_model, "fake: fail 401", "model_providers.fake.stream_max_retries=1"
    )

    assert ran.code == 1, ran.explain()
    assert len(ran.requests) == 2
    first_error = ran.of("error")[0]["message"]
    assert first_error.startswith("Reconnecting... 1/1 (unexpected status 401 Unauthorized")


@pytest.fixture
def refused_url() -> Iterator[str]:
    """A loopback port that refuses connections: bound, never listening."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/v1"


def test_a_refused_connection_fails_the_turn_once_unbounded_retries_are_off(
    codex: Path, place: Place, fake_model: FakeModelServer, refused_url: str
) -> None:
    ran = exec_codex(
        codex, place, fake_model, "fake: nothing", f'model_providers.fake.base_url="{refused_url}"'
    )

    assert ran.code == 1, ran.explain()
    assert [e["type"] for e in ran.events] == [
        "thread.started",
        "turn.started",
        "error",
        "turn.failed",
    ]
    assert ran.of("turn.failed")[0]["error"]["message"].startswith("Connection failed")


def test_a_refused_connection_is_retried_without_end_by_default(
    codex: Path, place: Place, fake_model: FakeModelServer, refused_url: str
) -> None:
    argv = exec_argv(
        codex,
        place,
        fake_model,
        f'model_providers.fake.base_url="{refused_url}"',
        "features.unbounded_connection_retries=true",
    )
    reconnects: list[str] = []
    with running([*argv, "fake: nothing"], place) as process:
        assert process.stdout is not None
        for line in process.stdout:
            event = json.loads(line)
            assert event["type"] not in ("turn.failed", "turn.completed"), event
            if event["type"] == "error":
                reconnects.append(event["message"])
            if len(reconnects) == 2:  # past request_max_retries=0 and stream_max_retries=0
                break

    waiting = "Reconnecting... waiting for network (Connection failed"
    assert all(message.startswith(waiting) for message in reconnects), reconnects


def test_a_hung_provider_holds_the_turn_until_codex_is_terminated(
    codex: Path, place: Place, fake_model: FakeModelServer
) -> None:
    with running([*exec_argv(codex, place, fake_model), "fake: hang"], place) as process:
        assert process.stdout is not None
        started = json.loads(process.stdout.readline())
        assert started["type"] == "thread.started"
        assert json.loads(process.stdout.readline())["type"] == "turn.started"
        wait_until(lambda: bool(requests_of(fake_model, started["thread_id"])))

        process.terminate()
        rest, _ = process.communicate(timeout=RUN_TIMEOUT)

    assert process.returncode == -signal.SIGTERM
    assert parse_events(rest) == []  # no turn.completed, no turn.failed: plait must time it out
    assert len(requests_of(fake_model, started["thread_id"])) == 1


def test_exec_resume_continues_the_session_and_sends_the_earlier_items(
    codex: Path, place: Place, fake_model: FakeModelServer
) -> None:
    first = exec_codex(codex, place, fake_model, "fake: write a.txt one")
    assert first.code == 0, first.explain()

    # exec's own flags (sandbox, directory) go before `resume`; `resume` has no --sandbox.
    argv = [*exec_argv(codex, place, fake_model), "resume", first.thread_id]
    ran = run([*argv, "fake: write b.txt two"], place, fake_model, cwd=place.repo.parent)

    assert ran.code == 0, ran.explain()
    assert ran.thread_id == first.thread_id
    assert (place.worktree / "b.txt").read_text() == "two\n"
    resumed = ran.requests[len(first.requests)]
    history = [i["type"] for i in resumed.body["input"]]
    assert history.count("function_call_output") == 1  # the first turn's, replayed
    texts = user_texts(resumed.body)
    assert texts.index("fake: write a.txt one") < texts.index("fake: write b.txt two")
    assert json.loads(resumed.headers["x-codex-turn-metadata"])["sandbox_mode"] == "workspace-write"


def test_exec_resume_without_exec_flags_falls_back_to_a_read_only_sandbox(
    codex: Path, place: Place, fake_model: FakeModelServer
) -> None:
    first = exec_codex(codex, place, fake_model, "fake: write a.txt one")
    assert first.code == 0, first.explain()

    argv = [str(codex), "exec", "resume", "--json", *provider_overrides(fake_model)]
    ran = run([*argv, first.thread_id, "fake: write b.txt two"], place, fake_model)

    assert ran.code == 0, ran.explain()
    assert not (place.worktree / "b.txt").exists()
    assert "a.txt: Read-only file system" in command_outputs(ran)[-1]
    turn = json.loads(ran.requests[-1].headers["x-codex-turn-metadata"])
    assert turn["sandbox_mode"] == "read-only"


def test_a_conflicted_files_prompt_resolves_the_markers_keeping_both_sides(
    codex: Path, place: Place, fake_model: FakeModelServer
) -> None:
    (place.worktree / "a.txt").write_text(
        "top\n<<<<<<< ours\nmine\n=======\ntheirs\n>>>>>>> theirs\nbottom\n"
    )
    prompt = "Resolve the merge conflicts.\n\nConflicted files:\n- a.txt\n"

    ran = exec_codex(codex, place, fake_model, prompt)

    assert ran.code == 0, ran.explain()
    assert (place.worktree / "a.txt").read_text() == "top\nmine\ntheirs\nbottom\n"


def test_a_side_request_is_answered_in_words_even_when_the_script_writes(
    fake_model: FakeModelServer,
) -> None:
    metadata = json.dumps({"request_kind": "compaction"})
    body = {
        "model": MODEL,
        "stream": True,
        "input": [{"type": "message", "role": "user", "content": "fake: write a.txt x"}],
        "tools": [{"type": "function", "name": "exec_command", "parameters": {}}],
    }

    with httpx.Client(base_url=fake_model.url, timeout=RUN_TIMEOUT) as client:
        reply = client.post("/v1/responses", json=body, headers={"x-codex-turn-metadata": metadata})

    assert reply.status_code == 200
    assert '"function_call"' not in reply.text
    assert "response.completed" in reply.text


def wait_until(condition: Any, timeout: float = RUN_TIMEOUT) -> None:
    """Wait on a condition (checked every 20 ms), failing after `timeout` seconds."""
    ticks: Iterator[int] = iter(range(int(timeout / 0.02)))
    pause = threading.Event()
    while not condition():
        if next(ticks, None) is None:
            pytest.fail("condition not met in time")
        pause.wait(0.02)


def test_with_debians_bubblewrap_first_on_path_every_sandboxed_command_fails_unseen(
    codex: Path, place: Place, fake_model: FakeModelServer
) -> None:
    """Why plait puts codex's own bwrap first on PATH: codex takes the first `bwrap` it
    finds, and Debian 12's bubblewrap 0.8 has no --argv0."""
    system = shutil.which("bwrap", path="/usr/bin:/bin")
    if system is None:
        pytest.skip("no system bubblewrap (.ci/run installs Debian's)")
    version = subprocess.run([system, "--version"], capture_output=True, text=True, check=False)
    if not version.stdout.startswith("bubblewrap 0.8"):
        pytest.skip(f"the system bubblewrap is {version.stdout.strip()}, not Debian 12's 0.8")
    env = {**environment(place), "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    argv = [*exec_argv(codex, place, fake_model), "fake: write notes/a.txt hello"]
    done = subprocess.run(
        argv,
        cwd=place.worktree,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )

    assert done.returncode == 0  # codex reports success
    assert not (place.worktree / "notes" / "a.txt").exists()
    last = fake_model.recorder.snapshot()[-1].body
    outputs = [str(i["output"]) for i in last["input"] if i.get("type") == "function_call_output"]
    assert any("execvp codex-linux-sandbox" in output for output in outputs)
