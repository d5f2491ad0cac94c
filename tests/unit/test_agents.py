"""Agent presets and templates produce exact argv lists; the prompt is always one element."""

from __future__ import annotations

import pytest

from plait.execution.agents import PRESETS, Command, build_command

NASTY = "fix \"it\"; rm -rf / $(curl evil) `id` && echo '{title}' > x\n"


def test_claude_preset_is_print_mode_with_stream_json() -> None:
    command = build_command("claude", "add tests", "t1", "Tests")
    assert command == Command(
        argv=[
            "claude", "-p", "add tests",
            "--permission-mode", "acceptEdits",
            "--output-format", "stream-json", "--verbose",
        ],
        shell=None,
    )  # fmt: skip


def test_codex_preset_is_exec_full_auto() -> None:
    assert build_command("codex", "add tests", "t1", "T").argv == [
        "codex", "exec", "--full-auto", "add tests",
    ]  # fmt: skip


def test_aider_preset_sends_one_message_without_streaming() -> None:
    assert build_command("aider", "add tests", "t1", "T").argv == [
        "aider", "--message", "add tests", "--yes-always", "--no-stream",
    ]  # fmt: skip


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_a_prompt_full_of_shell_syntax_is_exactly_one_argument(preset: str) -> None:
    argv = build_command(preset, NASTY, "t1", "T").argv
    assert argv is not None
    assert argv.count(NASTY) == 1
    assert len(argv) == len(PRESETS[preset])


@pytest.mark.parametrize("prompt", ["--dangerously-skip-permissions", "-", "- item"])
def test_a_prompt_that_looks_like_an_option_cannot_be_read_as_one(prompt: str) -> None:
    argv = build_command("codex", prompt, "t1", "T").argv
    assert argv == ["codex", "exec", "--full-auto", f" {prompt}"]


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
        PRESETS["evil"] = ("sh", "-c", "{prompt}")  # type: ignore[index]
