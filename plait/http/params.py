"""Reading requests: ids, JSON bodies, plan bodies, points in history.

Path ids are checked by the `{name:plait_id}` convertor: a path whose id does not match
ID_PATTERN matches no route at all, so a bad id never reaches the application, git or the
filesystem.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection
from datetime import UTC, datetime
from typing import Any

from starlette.convertors import Convertor, register_url_convertor
from starlette.requests import Request

from plait.domain.errors import PlanError
from plait.domain.ids import ID_PATTERN, ID_REGEX
from plait.domain.plan.model import Plan
from plait.domain.plan.parsing import parse_plan, plan_from_mapping
from plait.execution.runners.user_config import user_profiles
from plait.http.errors import ApiError

LEAP_SECOND = re.compile(r"(?<=T\d\d:\d\d):60")
JSON_TYPES = ("application/json",)
YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")


class IdConvertor(Convertor[str]):
    regex = ID_REGEX

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        if not ID_PATTERN.fullmatch(value):
            raise ValueError(f"not a valid id: {value!r}")
        return value


register_url_convertor("plait_id", IdConvertor())


def checked_id(value: str | None, what: str) -> str | None:
    if value is None or value == "":
        return None
    if not ID_PATTERN.fullmatch(value):
        raise ApiError(400, "invalid_id", f"{what} must match ^{ID_REGEX}$")
    return value


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


async def json_body(request: Request, *, required: bool = True) -> Any:
    raw = await request.body()
    if not raw.strip():
        if required:
            raise ApiError(400, "invalid_json", "the request needs a JSON body")
        return None
    kind = media_type(request)
    if kind and kind not in JSON_TYPES:
        raise ApiError(415, "unsupported_media_type", "send the body as application/json")
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise ApiError(400, "invalid_json", f"the body is not valid JSON: {exc}") from None


async def json_object(
    request: Request, fields: Collection[str], *, required: bool = True
) -> dict[str, Any]:
    """The body as a JSON object with only `fields` in it: a misspelt field is refused (422)
    rather than silently ignored."""
    body = await json_body(request, required=required)
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_json", "the body must be a JSON object")
    unknown = sorted(set(body) - set(fields))
    if unknown:
        takes = ", ".join(repr(f) for f in fields) if fields else "no fields"
        raise ApiError(
            422,
            "unknown_field",
            f"unknown field {', '.join(repr(u) for u in unknown)}: this request takes {takes}",
        )
    return body


def optional_text(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is not None and not isinstance(value, str):
        raise ApiError(400, "bad_request", f"{key!r} must be a string")
    return value


async def plan_body(request: Request) -> Plan:
    """A plan as JSON, or as YAML when the content type says so. Bad plans raise PlanError."""
    kind = media_type(request)
    if kind in YAML_TYPES:
        raw = await request.body()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise PlanError(["request body: a YAML plan must be UTF-8 text"]) from None
        return parse_plan(text, source="request body", user_profiles=user_profiles())
    if kind not in ("", *JSON_TYPES):
        raise ApiError(
            415, "unsupported_media_type", "send the plan as application/json or application/yaml"
        )
    return plan_from_mapping(await json_body(request), user_profiles=user_profiles())


def parse_until(raw: str | None) -> int | datetime | None:
    """`?until=` as a global position (an integer) or a moment (ISO 8601; UTC if no offset)."""
    if raw is None or raw == "":
        return None
    if raw.isdigit():
        return int(raw)
    try:
        # RFC 3339 allows 't', 'z' and a leap second, which datetime does not.
        moment = datetime.fromisoformat(LEAP_SECOND.sub(":59", raw.upper()))

    except ValueError:
        raise ApiError(
            400, "bad_request", "until must be a position (integer) or an ISO 8601 time"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment


def after_position(request: Request) -> int:
    """Where an event stream resumes: Last-Event-ID (a reconnect) wins over `?after=`."""
    given = [request.headers.get("last-event-id"), request.query_params.get("after")]
    for raw in given:
        if raw is not None and not raw.strip().isdigit():
            raise ApiError(400, "bad_request", "Last-Event-ID and after must be event positions")
    return next((int(raw) for raw in given if raw is not None), 0)


def int_param(
    request: Request, name: str, *, default: int | None, low: int, high: int
) -> int | None:
    """A whole-number query parameter from `low` to `high`; 400 naming it otherwise."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise ApiError(400, "bad_request", f"{name} must be a whole number from {low} to {high}")
    return int(raw)
