"""The agent presets: how plait drives each coding-agent CLI, as one table of data.

Everything else is derived from this table: the runners a plan may name, the CLI's help,
the OpenAPI text, the planning step's choices, the version check before a run, the
environment each agent gets, and the files kept out of a task's commit. Adding a preset
is adding a row here; a CLI whose output no existing parser reads also needs a parser for
its format in `plait.execution.runners.agent_output`.

Each flag was checked against the installed CLI's `--help` and against runs of the real
CLI in the tests (tests/e2e/test_agent_cli_*.py); docs/agents.md says why each is there.

Placeholders, substituted inside single argv elements: `{prompt}` (the task's prompt,
always exactly one argument), `{model}`, `{session}` (a session id to resume) and
`{scratch}` (a directory outside the worktree for the tool's own files). The element
`{options}` marks where the model and a profile's `args` go (at the end without it).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

__all__ = [
    "PRESETS",
    "SHELL",
    "AgentPreset",
    "Version",
    "parse_version",
    "preset_names",
    "runner_names",
]

SHELL: Final = "shell"

Version = tuple[int, ...]


@dataclass(frozen=True)
class AgentPreset:
    name: str
    title: str  # for help texts
    install: str  # how a user installs it, for the error when it is missing
    program: str
    args: tuple[str, ...]  # after the program; `{prompt}` is required
    model_args: tuple[str, ...]  # added when a profile names a model
    # The versions plait was tested with: [low, high). Others are refused before a run.
    versions: tuple[Version, Version]
    version_pattern: str  # finds the version in `program --version`'s output
    # The format of its output, which names the parser that reads it (one per format, in
    # plait.execution.runners.agent_output): its verdict, tokens, cost and session.
    output: str
    # Environment names (exact, or prefixes ending in `_`) the agent may see of the
    # provider credentials and settings; every other provider key is withheld.
    provider_env: tuple[str, ...]
    # Paths (gitignore patterns) the tool writes for itself: never part of a task's commit.
    scratch: tuple[str, ...] = ()
    # Added to the environment: settings that keep the CLI non-interactive and quiet.
    env: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    # Added when plait runs as root (some CLIs refuse their no-prompt mode as root).
    root_env: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    # How to continue a session with a new prompt (conflict resolution); None: it cannot.
    resume_args: tuple[str, ...] | None = None
    # How the prompt for resolving conflicts reaches the tool's context: "prompt" (it
    # reads the files itself) or "files" (the conflicted files are named on its command
    # line, after `files_flag`).
    files_flag: str | None = None
    # Added when the agent resolves a conflict.
    resolve_args: tuple[str, ...] = ()
    # Directories of the CLI's own tools, as globs relative to the real directory of its
    # program: the first match of each goes first on the task's PATH.
    path_prepend: tuple[str, ...] = ()


def _frozen(values: dict[str, str]) -> Mapping[str, str]:
    return MappingProxyType(values)


# Codex settings as `-c` overrides (no config file of the user's is changed): no analytics,
# plugin or update traffic; a refused connection fails instead of retrying for ever; and
# the sandbox does not open /tmp or $TMPDIR for writing, where a repository may live.
_CODEX_SETTINGS = (
    "-c", "analytics.enabled=false",
    "-c", "features.plugins=false",
    "-c", "check_for_update_on_startup=false",
    "-c", "features.unbounded_connection_retries=false",
    "-c", "sandbox_workspace_write.exclude_slash_tmp=true",
    "-c", "sandbox_workspace_write.exclude_tmpdir_env_var=true",
)  # fmt: skip


PRESETS: Mapping[str, AgentPreset] = MappingProxyType(
    {
        "claude": AgentPreset(
            name="claude",
            title="Claude Code",
            install="npm install -g @anthropic-ai/claude-code",
            program="claude",
            args=(
                "-p", "{prompt}",
                "--output-format", "stream-json", "--verbose",
                "--permission-mode", "bypassPermissions",
            ),
            model_args=("--model", "{model}"),
            versions=((2, 1, 0), (2, 2, 0)),
            version_pattern=r"^(\d+\.\d+\.\d+) \(Claude Code\)",
            output="claude-stream-json",
            provider_env=("ANTHROPIC_", "CLAUDE_CODE_", "CLAUDE_CONFIG_DIR", "AWS_", "CLOUD_ML_"),
            scratch=(".claude/settings.local.json",),
            env=_frozen(
                {
                    # No update checks, telemetry or error reports: only the model's API.
                    "DISABLE_AUTOUPDATER": "1",
                    "DISABLE_TELEMETRY": "1",
                    "DISABLE_ERROR_REPORTING": "1",
                    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
                }
            ),
            # bypassPermissions refuses to start as root unless told it is in a sandbox:
            # plait's worktree is the agent's own (see docs/agents.md).
            root_env=_frozen({"IS_SANDBOX": "1"}),
            resume_args=(
                "--resume", "{session}", "-p", "{prompt}",
                "--output-format", "stream-json", "--verbose",
                "--permission-mode", "bypassPermissions",
            ),
        ),
        "codex": AgentPreset(
            name="codex",
            title="Codex CLI",
            install="npm install -g @openai/codex",
            program="codex",
            # `exec` runs with approval policy "never"; workspace-write is its bubblewrap
            # sandbox (the worktree writable, its git metadata read-only, no network).
            args=(
                "exec", "--json", "--sandbox", "workspace-write", *_CODEX_SETTINGS,
                "{options}", "{prompt}",
            ),
            model_args=("--model", "{model}"),
            versions=((0, 170, 0), (0, 180, 0)),
            version_pattern=r"^codex-cli (\d+\.\d+\.\d+)",
            output="codex-jsonl",
            provider_env=("OPENAI_", "CODEX_", "AZURE_OPENAI_"),
            # Its sandbox takes the first `bwrap` on PATH, and Debian 12's bubblewrap 0.8
            # has no --argv0: every sandboxed command then fails ("execvp
            # codex-linux-sandbox"), invisibly in --json. Its own bwrap goes first.
            path_prepend=(
                "../../codex-linux-*/vendor/*/codex-resources",
                "../node_modules/@openai/codex-linux-*/vendor/*/codex-resources",
            ),
            # `resume` takes no sandbox option of its own: without exec's, the resumed turn
            # is silently read-only.
            resume_args=(
                "exec", "--json", "--sandbox", "workspace-write", *_CODEX_SETTINGS,
                "{options}", "resume", "{session}", "{prompt}",
            ),
        ),
        "aider": AgentPreset(
            name="aider",
            title="aider",
            install="python -m pip install aider-chat",
            program="aider",
            args=(
                "--message", "{prompt}", "--yes-always", "--no-stream",
                # plait commits the task's work itself, on the task's branch.
                "--no-auto-commits", "--no-dirty-commits",
                # Its own files stay out of the worktree and out of .gitignore: no repo
                # map (its tags cache), the histories in the attempt's scratch directory.
                "--no-gitignore", "--map-tokens", "0",
                "--chat-history-file", "{scratch}/aider.chat.history.md",
                "--input-history-file", "{scratch}/aider.input.history",
                # Nothing but the model: no update check, analytics, URL fetching,
                # Playwright offer, lint round trips or shell-command suggestions.
                "--no-check-update", "--no-show-release-notes", "--no-analytics",
                "--no-show-model-warnings", "--no-detect-urls", "--disable-playwright",
                "--no-auto-lint", "--no-suggest-shell-commands",
                "--no-pretty", "--no-fancy-input",
                "{options}",
            ),
            model_args=("--model", "{model}"),
            versions=((0, 86, 0), (0, 87, 0)),
            version_pattern=r"^aider (\d+\.\d+\.\d+)",
            output="aider-text",
            # aider picks the provider from the model's name: it may need any of them.
            provider_env=(
                "OPENAI_", "ANTHROPIC_", "GEMINI_", "GOOGLE_", "OPENROUTER_", "DEEPSEEK_",
                "MISTRAL_", "GROQ_", "XAI_", "AZURE_", "OLLAMA_", "AIDER_", "LITELLM_",
            ),
            scratch=(".aider*",),
            env=_frozen(
                {
                    # litellm's price list from its package, not fetched from GitHub.
                    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
                    # With --yes-always it would accept to open every URL of a message.
                    "BROWSER": "true",
                    # One line per message (rich wraps at 80 columns off a terminal), and
                    # unbuffered, so its output is read as it comes.
                    "COLUMNS": "10000",
                    "PYTHONUNBUFFERED": "1",
                    # Without an identity it writes a placeholder one into the repository's
                    # shared config; plait makes the commits, under its own identity.
                    "GIT_CONFIG_COUNT": "2",
                    "GIT_CONFIG_KEY_0": "user.name",
                    "GIT_CONFIG_VALUE_0": "plait",
                    "GIT_CONFIG_KEY_1": "user.email",
                    "GIT_CONFIG_VALUE_1": "plait@localhost",
                }
            ),
            files_flag="--file",
            # Its diff format reads git's `=======` as its own divider and corrupts the
            # file; the whole format rewrites each conflicted file.
            resolve_args=("--edit-format", "whole"),
        ),
    }
)  # fmt: skip

# What a task's own runs leave behind that the repository does not track: kept out of the
# task's commit (git's ignore rules, so a tracked file or one a task adds itself still
# counts). A test run's bytecode, a setup's virtualenv or node_modules, tool caches.
BYPRODUCTS: Final = (
    "__pycache__/",
    "*.py[cod]",
    ".pytest_cache/",
    ".mypy_cache/",
    ".ruff_cache/",
    ".hypothesis/",
    ".tox/",
    ".nox/",
    ".venv/",
    "node_modules/",
    ".coverage",
    ".coverage.*",
)

# Names that are provider credentials or settings wherever they appear: withheld from a
# task unless its agent (or its profile's `pass_env`) asks for them.
PROVIDER_ENV_PREFIXES: Final = tuple(
    sorted({p for preset in PRESETS.values() for p in preset.provider_env if p.endswith("_")})
)
_SECRET_SUFFIXES: Final = ("_API_KEY", "_AUTH_TOKEN", "_ACCESS_KEY_ID", "_SECRET_ACCESS_KEY")


def is_provider_env(name: str) -> bool:
    """Whether `name` is a model provider's credential or setting (withheld by default)."""
    return name.startswith(PROVIDER_ENV_PREFIXES) or name.endswith(_SECRET_SUFFIXES)


def passes(patterns: tuple[str, ...], name: str) -> bool:
    """Whether `name` matches one of the exact names or `PREFIX_` patterns."""
    return any(name.startswith(p) if p.endswith("_") else name == p for p in patterns)


def preset_names() -> tuple[str, ...]:
    return tuple(PRESETS)


def runner_names() -> tuple[str, ...]:
    """Every runner a plan may name: the shell and the presets."""
    return (SHELL, *PRESETS)


_VERSION = re.compile(r"\d+(?:\.\d+)*")


def parse_version(text: str) -> Version:
    """`"2.1.332"` -> (2, 1, 332). ValueError for anything else."""
    if not _VERSION.fullmatch(text):
        raise ValueError(f"not a version: {text!r}")
    return tuple(int(part) for part in text.split("."))


def show_version(version: Version) -> str:
    return ".".join(str(part) for part in version)


def supported(preset: AgentPreset, version: Version) -> bool:
    low, high = preset.versions
    return low <= version < high


def supported_text(preset: AgentPreset) -> str:
    low, high = preset.versions
    return f">= {show_version(low)}, < {show_version(high)}"
