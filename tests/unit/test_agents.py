"""Agent presets, profiles and templates: argv lists with the prompt as one element, and an
environment that gives each agent only its own provider's keys."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from plait.domain.agents import parse_version, supported
from plait.domain.plan.model import Profile
from plait.execution.runners.agents import PRESETS, agent_env, build_command

NASTY = "fix \"it\"; rm -rf / $(curl evil) `id` && echo '{title}' > x\n"


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_a_prompt_full_of_shell_syntax_is_exactly_one_argument(preset: str) -> None:
    argv = build_command(preset, NASTY, "t1", "T").argv
    assert argv is not None
    assert argv.count(NASTY) == 1
    assert argv[0] == PRESETS[preset].program


@pytest.mark.parametrize("prompt", ["--dangerously-skip-permissions", "-", "- item"])
def test_a_prompt_that_looks_like_an_option_cannot_be_read_as_one(prompt: str) -> None:
    argv = build_command("codex", prompt, "t1", "T").argv
    assert argv is not None
    assert f" {prompt}" in argv
    assert prompt not in argv


def test_a_preset_asks_for_a_model_only_when_its_profile_names_one() -> None:
    plain = build_command("claude", "p", "t1", "T").argv
    profile = Profile(name="fast", agent="claude", model="claude-haiku-4-5", args=("--x",))
    chosen = build_command("claude", "p", "t1", "T", profile=profile).argv
    assert plain is not None
    assert chosen is not None
    assert "--model" not in plain
    assert chosen == [*plain, "--model", "claude-haiku-4-5", "--x"]


def test_a_profiles_program_replaces_the_presets_program_on_path() -> None:
    profile = Profile(name="pinned", agent="codex", program="/opt/codex/bin/codex")
    argv = build_command("codex", "p", "t1", "T", profile=profile).argv
    assert argv is not None
    assert argv[0] == "/opt/codex/bin/codex"


def test_aider_keeps_its_history_files_in_the_scratch_directory(tmp_path: Path) -> None:
    argv = build_command("aider", "p", "t1", "T", scratch=tmp_path).argv
    assert argv is not None
    histories = [argv[i + 1] for i, a in enumerate(argv) if a.endswith("-history-file")]
    assert histories
    assert all(Path(h).parent == tmp_path for h in histories)


def test_resuming_a_session_uses_the_presets_resume_form() -> None:
    argv = build_command("claude", "fix it", "t1", "T", session="abc-123").argv
    assert argv is not None
    assert argv[argv.index("--resume") + 1] == "abc-123"
    with pytest.raises(ValueError, match="cannot resume"):
        build_command("aider", "p", "t1", "T", session="x")


BASE_ENV = {
    "PATH": "/usr/bin",
    "ANTHROPIC_API_KEY": "sk-ant",
    "OPENAI_API_KEY": "sk-oai",
    "GEMINI_API_KEY": "g",
    "SOME_SERVICE_API_KEY": "s",
}


def test_each_agent_sees_only_its_own_providers_keys() -> None:
    claude = agent_env(BASE_ENV, build_command("claude", "p", "t", "T"), as_root=False)
    codex = agent_env(BASE_ENV, build_command("codex", "p", "t", "T"), as_root=False)
    assert "ANTHROPIC_API_KEY" in claude
    assert "OPENAI_API_KEY" not in claude
    assert "OPENAI_API_KEY" in codex
    assert "ANTHROPIC_API_KEY" not in codex
    assert "SOME_SERVICE_API_KEY" not in claude


def test_a_shell_task_sees_no_provider_key_unless_its_profile_passes_one() -> None:
    bare = agent_env(BASE_ENV, build_command("shell", "", "t", "T", run="make"))
    assert set(bare) == {"PATH"}
    profile = Profile(name="deploy", agent="shell", pass_env=("SOME_SERVICE_API_KEY",))
    asked = agent_env(BASE_ENV, build_command("shell", "", "t", "T", run="x", profile=profile))
    assert set(asked) == {"PATH", "SOME_SERVICE_API_KEY"}


def test_a_profile_adds_and_drops_variables_reading_references_from_plaits_environment() -> None:
    profile = Profile(
        name="gateway",
        agent="claude",
        env=(("ANTHROPIC_BASE_URL", "https://gw"), ("ANTHROPIC_AUTH_TOKEN", "${GW_TOKEN}")),
        drop_env=("ANTHROPIC_API_KEY",),
    )
    env = agent_env(
        {**BASE_ENV, "GW_TOKEN": "t0k"},
        build_command("claude", "p", "t", "T", profile=profile),
        as_root=False,
    )
    assert env["ANTHROPIC_BASE_URL"] == "https://gw"
    assert env["ANTHROPIC_AUTH_TOKEN"] == "t0k"
    assert "ANTHROPIC_API_KEY" not in env


def test_claude_code_is_told_it_runs_in_a_sandbox_only_as_root() -> None:
    command = build_command("claude", "p", "t", "T")
    assert agent_env(BASE_ENV, command, as_root=True)["IS_SANDBOX"] == "1"
    assert "IS_SANDBOX" not in agent_env(BASE_ENV, command, as_root=False)


@pytest.mark.parametrize(
    ("name", "text", "version"),
    [
        ("claude", "2.1.332 (Claude Code)\n", (2, 1, 332)),
        ("codex", "codex-cli 0.171.0\n", (0, 171, 0)),
        ("aider", "aider 0.86.2\n", (0, 86, 2)),
    ],
)
def test_each_presets_version_is_read_from_its_version_output(
    name: str, text: str, version: tuple[int, ...]
) -> None:
    preset = PRESETS[name]
    found = re.search(preset.version_pattern, text, re.M)
    assert found is not None
    assert parse_version(found.group(1)) == version
    assert supported(preset, version)


def test_a_version_outside_the_tested_range_is_not_supported() -> None:
    assert not supported(PRESETS["codex"], (0, 99, 0))
    assert not supported(PRESETS["claude"], (3, 0, 0))


def test_a_custom_template_substitutes_placeholders_inside_single_elements() -> None:
    template = ["my-agent", "--task={task_id}", "--title", "{title}", "--", "{prompt}"]
    command = build_command(template, NASTY, "t-1", "Add; tests")
    assert command.argv == ["my-agent", "--task=t-1", "--title", "Add; tests", "--", NASTY]
    assert command.shell is None


def test_placeholders_inside_the_prompt_are_left_alone() -> None:
    argv = build_command(["agent", "{prompt}", "{task_id}"], "say {task_id}", "t1", "T").argv
    assert argv == ["agent", "say {task_id}", "t1"]


def test_other_braces_in_a_template_are_kept_verbatim() -> None:
    argv = build_command(["agent", '{"json": true}', "{nope}"], "p", "t1", "T").argv
    assert argv == ["agent", '{"json": true}', "{nope}"]


def test_the_shell_agent_runs_the_tasks_own_command_line() -> None:
    command = build_command("shell", "ignored", "t1", "T", run="make test && echo ok")
    assert (command.argv, command.shell) == (None, "make test && echo ok")


def test_the_shell_agent_without_a_run_command_is_refused() -> None:
    with pytest.raises(ValueError, match="needs a run command"):
        build_command("shell", "p", "t1", "T")


def test_an_unknown_preset_names_the_known_ones() -> None:
    with pytest.raises(
        ValueError, match=r"unknown agent preset 'gpt'.*aider, claude, codex, shell"
    ):
        build_command("gpt", "p", "t1", "T")


@pytest.mark.parametrize("template", [[], [""], ["{prompt}", "x"], ["run-{task_id}"]])
def test_a_template_must_start_with_a_fixed_program(template: list[str]) -> None:
    with pytest.raises(ValueError, match="fixed program name"):
        build_command(template, "p", "t1", "T")


def test_presets_are_read_only_data() -> None:
    with pytest.raises(TypeError):
        PRESETS["evil"] = PRESETS["claude"]  # type: ignore[index]
