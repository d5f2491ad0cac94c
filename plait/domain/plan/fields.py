"""Typed reads from an untrusted mapping.

A plan arrives from a file or an HTTP body, so any field may hold anything. A
`FieldReader` checks one mapping field by field and appends a message for each
problem instead of raising, so the user sees every mistake at once.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Collection, Mapping
from typing import Any, overload

MAX_TEXT = 100_000  # prompts and commands
MAX_NAME = 1_000  # ids, titles, paths, branch names
MAX_ITEMS = 10_000  # entries of any list
MAX_SECONDS = 30 * 24 * 3600  # a timeout beyond a month is a typo, not a plan

_TYPE_NAMES: dict[type, str] = {
    type(None): "null",
    bool: "bool",
    int: "int",
    float: "float",
    str: "str",
    list: "list",
    tuple: "list",
    dict: "mapping",
}

# The essentials of `git check-ref-format`: what could break a command line or a ref.
_BAD_IN_BRANCH = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]|\.\.|@\{|//|/\.")


def type_name(value: object) -> str:
    """The YAML/JSON name of a value's type, for messages like `got str`."""
    if isinstance(value, Mapping):
        return "mapping"
    return _TYPE_NAMES.get(type(value), type(value).__name__)


def show(value: object, limit: int = 60) -> str:
    """A short, safe rendering of a user's value: a huge bad value must not flood the report."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        return f"an int of {value.bit_length()} bits"  # repr() refuses ints over 4300 digits
    if not isinstance(value, str | int | float | bool) and value is not None:
        return f"a {type_name(value)}"
    text = repr(value)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(value) if isinstance(value, str) else len(text)} chars)"


def branch_name_problem(name: str) -> str | None:
    """Why `name` cannot be a git branch name, or None if it can."""
    if (
        name.startswith(("-", "/", "."))  # a leading '-' would turn into a git option
        or name.endswith(("/", ".", ".lock"))
        or name == "@"
        or _BAD_IN_BRANCH.search(name)
    ):
        return f"must be a git branch name, got {show(name)}"
    return None


class FieldReader:
    """Reads typed fields of one mapping; problems go to a shared list, prefixed by `owner`."""

    def __init__(self, data: Mapping[Any, Any], owner: str | None, problems: list[str]) -> None:
        self._data = data
        self._owner = owner
        self._problems = problems

    def problem(self, message: str) -> None:
        self._problems.append(f"{self._owner}: {message}" if self._owner else message)

    def get(self, key: str) -> object:
        """The raw value; None (YAML `~` or an absent key) means "not given"."""
        return self._data.get(key)

    def reject_unknown(self, allowed: Collection[str]) -> None:
        where = self._owner or "the plan"
        for key in self._data:
            if isinstance(key, str) and key in allowed:
                continue
            hint = ""
            if isinstance(key, str):
                close = difflib.get_close_matches(key, sorted(allowed), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
            self._problems.append(f"unknown field {show(key)} in {where}{hint}")

    def text(self, key: str, *, max_len: int = MAX_NAME) -> str | None:
        value = self._data.get(key)
        return None if value is None else self.check_text(f"'{key}'", value, max_len)

    def check_text(self, label: str, value: object, max_len: int) -> str | None:
        """`value` if it is usable text, else None after recording why."""
        if not isinstance(value, str):
            self.problem(f"{label} must be a string, got {type_name(value)}")
        elif "\x00" in value:
            self.problem(f"{label} contains a NUL byte")
        elif not _is_unicode(value):
            self.problem(f"{label} is not valid Unicode text (it has a lone surrogate)")
        elif not value.strip():
            self.problem(f"{label} must not be empty")
        elif len(value) > max_len:
            self.problem(f"{label} is too long ({len(value)} characters; the limit is {max_len})")
        else:
            return value
        return None

    def text_list(
        self,
        key: str,
        *,
        what: str,
        max_len: int = MAX_NAME,
        check: Callable[[str], str | None] | None = None,
    ) -> tuple[str, ...] | None:
        """The valid items of a list of strings, or None if the value is not a list at all.

        `check` returns why an otherwise fine string is refused (e.g. an absolute path).
        """
        value = self._data.get(key)
        if value is None:
            return ()
        if not isinstance(value, list | tuple):
            self.problem(f"'{key}' must be a list of {what}, got {type_name(value)}")
            return None
        if len(value) > MAX_ITEMS:
            self.problem(f"'{key}' has {len(value)} entries; the limit is {MAX_ITEMS}")
            return None
        items: list[str] = []
        for index, item in enumerate(value):
            label = f"'{key}[{index}]'"
            text = self.check_text(label, item, max_len)
            why = check(text) if text is not None and check is not None else None
            if why is not None:
                self.problem(f"{label} {why}")
            elif text is not None:
                items.append(text)
        return tuple(items)

    @overload
    def integer(self, key: str, *, low: int, high: int, default: int) -> int: ...
    @overload
    def integer(self, key: str, *, low: int, high: int, default: None = None) -> int | None: ...
    def integer(self, key: str, *, low: int, high: int, default: int | None = None) -> int | None:
        value = self._data.get(key)
        if value is None:
            return default
        # bool is a subclass of int, but `retries: yes` is a mistake, not 1.
        if isinstance(value, bool) or not isinstance(value, int):
            self.problem(f"'{key}' must be an integer, got {type_name(value)}")
        elif not low <= value <= high:
            self.problem(f"'{key}' must be from {low} to {high}, got {show(value)}")
        else:
            return value
        return default

    def seconds(self, key: str) -> float | None:
        value = self._data.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.problem(f"'{key}' must be a number of seconds, got {type_name(value)}")
        elif not (math.isfinite(value) and 0 < value <= MAX_SECONDS):
            self.problem(f"'{key}' must be more than 0 and at most {MAX_SECONDS} seconds")
        else:
            return value
        return None

    def flag(self, key: str, *, default: bool) -> bool:
        value = self._data.get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            self.problem(f"'{key}' must be true or false, got {type_name(value)}")
            return default
        return value


def _is_unicode(value: str) -> bool:
    """False for a str holding a lone surrogate (JSON's "\\ud800"): no database can store it."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
