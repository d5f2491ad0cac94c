"""Each CLI's own account of its session, read from lines it really printed (Claude Code
2.1.332, codex-cli 0.171.0, aider 0.86.2; samples trimmed to the fields that matter)."""

from __future__ import annotations

import json

from plait.domain.agents import PRESETS
from plait.execution.runners.agent_output import LineFeed, parser_for
from plait.execution.runners.agent_report import AgentReport


def report(agent: str, *lines: str, chunk: int = 7) -> AgentReport:
    """Feed the lines to the agent preset's parser in small chunks, as a pipe delivers them."""
    feed = LineFeed(parser_for(PRESETS[agent].output))
    text = "".join(line + "\n" for line in lines)
    for start in range(0, len(text), chunk):
        feed.add("stdout", text[start : start + chunk])
    return feed.report()


CLAUDE_INIT = json.dumps(
    {"type": "system", "subtype": "init", "session_id": "907f", "model": "claude-sonnet-4-5"}
)
CLAUDE_OK = json.dumps(
    {
        "type": "result",
        "subtype": "success",
        "is_error": False,
        "result": "Done.",
        "session_id": "907f",
        "total_cost_usd": 0.13104705,
        "usage": {
            "input_tokens": 6734,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 38274,
            "output_tokens": 106,
        },
        "permission_denials": [],
        "model_usage_since_last_result": {"claude-sonnet-4-5": {"costUSD": 0.0332742}},
    }
)


def test_claudes_result_gives_the_session_tokens_and_this_runs_cost() -> None:
    got = report("claude", CLAUDE_INIT, CLAUDE_OK)
    assert got == AgentReport(
        error="",
        model="claude-sonnet-4-5",
        session_id="907f",
        tokens_in=6734 + 38274,
        tokens_out=106,
        cost_usd=0.0332742,  # after a resume total_cost_usd is the whole session's
        saw_output=True,
    )


def test_claudes_api_error_is_its_own_words_even_though_subtype_says_success() -> None:
    result = {
        "type": "result",
        "subtype": "success",
        "is_error": True,
        "api_error_status": 401,
        "result": "Invalid API key · Fix external API key",
        "session_id": "a218",
    }
    got = report("claude", CLAUDE_INIT, json.dumps(result))
    assert got.error == "Claude Code failed: Invalid API key · Fix external API key (HTTP 401)"


def test_claudes_refused_tool_calls_fail_the_task_though_it_exits_0() -> None:
    result = json.loads(CLAUDE_OK)
    result["permission_denials"] = [
        {"tool_name": "Write", "tool_input": {"file_path": "/w/.git/x.txt"}},
        {"tool_name": "Bash", "tool_input": {"command": "pytest -q"}},
    ]
    got = report("claude", json.dumps(result))
    assert got.error == (
        "Claude Code was refused 2 tool call(s): Write(/w/.git/x.txt), Bash(pytest -q)"
    )


def test_claude_without_a_result_message_has_failed() -> None:
    assert report("claude", CLAUDE_INIT).error == "Claude Code ended without a result message"


def test_a_claude_line_is_rendered_for_a_person_not_as_json() -> None:
    feed = LineFeed(parser_for(PRESETS["claude"].output))
    tool = {
        "type": "assistant",
        "message": {"content": [{"type": "tool_use", "name": "Bash", "input": {"command": "ls"}}]},
    }
    assert feed.add("stdout", json.dumps(tool) + "\n" + CLAUDE_OK + "\n") == (
        "-> Bash: ls\n[claude] done: Done.\n"
    )


CODEX_401 = [
    '{"type":"thread.started","thread_id":"01a2"}',
    '{"type":"turn.started"}',
    '{"type":"error","message":"Reconnecting... 1/5 (unexpected status 401 Unauthorized)"}',
    '{"type":"error","message":"unexpected status 401 Unauthorized: Incorrect API key provided"}',
    '{"type":"turn.failed","error":{"message":"unexpected status 401 Unauthorized: Incorrect'
    ' API key provided"}}',
]


def test_codexs_verdict_is_the_failed_turns_message() -> None:
    got = report("codex", *CODEX_401)
    assert (
        got.error == "Codex failed: unexpected status 401 Unauthorized: Incorrect API key provided"
    )
    assert got.session_id == "01a2"


def test_codexs_reconnect_chatter_before_a_completed_turn_is_no_error() -> None:
    got = report(
        "codex",
        '{"type":"thread.started","thread_id":"01a2"}',
        '{"type":"error","message":"Reconnecting... 1/5 (stream disconnected)"}',
        '{"type":"turn.completed","usage":{"input_tokens":19788,"cached_input_tokens":0,'
        '"output_tokens":20}}',
    )
    assert (got.error, got.tokens_in, got.tokens_out) == ("", 19788, 20)


AIDER_OK = "Tokens: 2.3k sent, 120 received. Cost: $0.00042 message, $0.00042 session."


def test_aiders_token_and_cost_lines_are_read() -> None:
    got = report("aider", "Main model: openai/gpt-4o-mini with whole edit format", AIDER_OK)
    assert (got.error, got.model) == ("", "openai/gpt-4o-mini")
    assert (got.tokens_in, got.tokens_out, got.cost_usd) == (2300, 120, 0.00042)


def test_aiders_authentication_failure_fails_the_task_though_it_exits_0() -> None:
    got = report(
        "aider",
        "litellm.AuthenticationError: AuthenticationError: OpenAIException - Incorrect API key",
        "The API provider is not able to authenticate you. Check your API key.",
    )
    assert got.error == (
        "aider reported an error: The API provider is not able to authenticate you."
        " Check your API key."
    )


def test_an_aider_error_that_a_retry_got_past_is_no_error() -> None:
    got = report(
        "aider",
        "litellm.InternalServerError: InternalServerError: OpenAIException - server error",
        "Retrying in 0.2 seconds...",
        AIDER_OK,
    )
    assert got.error == ""


def test_every_agent_preset_names_an_output_format_a_parser_reads() -> None:
    for preset in PRESETS.values():
        assert parser_for(preset.output).report().saw_output is False, preset.name
