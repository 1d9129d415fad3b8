"""The API's refusals in Simplified Chinese, in the shapes it documents: a 422 is FastAPI's
HTTPValidationError (``{"detail": [{"loc", "msg", "type"}]}``), every other refusal
``{"detail": "<text>"}``. A message names the field at fault and never quotes what was
sent (it may be 100 KB, hold U+0000 or personal data); under /console the same refusal is a
page of the console. Python's own exception texts never reach a client."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from html import escape
from http import HTTPStatus
from typing import Any

import structlog
from fastapi import FastAPI, Request, Response
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = structlog.get_logger(__name__)

#: What each error type (pydantic's, or processors.intake's RejectionReason) says, in words.
PROBLEMS: dict[str, str] = {
    "missing": "缺少此项",
    "int_parsing": "应为整数（半角数字）",
    "int_type": "应为整数",
    "int_from_float": "应为整数",
    "float_parsing": "应为数字",
    "float_type": "应为数字",
    "bool_parsing": "应为 true 或 false",
    "bool_type": "应为 true 或 false",
    "string_type": "应为文本",
    "string_too_long": "过长",
    "string_too_short": "过短",
    "string_pattern_mismatch": "格式不符",
    "greater_than": "超出允许范围（过小）",
    "greater_than_equal": "超出允许范围（过小）",
    "less_than": "超出允许范围（过大）",
    "less_than_equal": "超出允许范围（过大）",
    "enum": "不是可选的取值之一",
    "literal_error": "不是可选的取值之一",
    "datetime_parsing": "应为带时区的 ISO 8601 时间，例如 2026-11-21T09:12:44+08:00",
    "datetime_from_date_parsing": "应为带时区的 ISO 8601 时间，例如 2026-11-21T09:12:44+08:00",
    "datetime_type": "应为带时区的 ISO 8601 时间",
    "timezone_aware": "时间须带时区偏移，例如 +08:00",
    "value_error": "取值无效",
    "json_invalid": "不是有效的 JSON",
    "model_attributes_type": "应为 JSON 对象",
    "dict_type": "应为 JSON 对象",
    "list_type": "应为列表",
    "extra_forbidden": "含有不受理的字段",
    # processors.intake's reasons (a command body is checked as a message on the topic)
    "invalid_character": "含有不允许的字符（U+0000）",
    "not_utf8": "不是有效的 UTF-8 文本",
    "not_json": "不是有效的 JSON",
    "not_an_object": "应为 JSON 对象",
    "empty_message": "内容为空",
    "too_large": "过长或过大",
    "too_complex": "嵌套过深或字段过多",
    "duplicate_key": "含有重复的字段名",
    "invalid_field": "类型或取值无效（整数须在 64 位范围内，文本不得过长）",
    "missing_offset": "时间须带时区偏移，例如 +08:00",
    "implausible_time": "时间超出合理范围",
    "bad_plate": "号牌格式无效",
    "not_a_period": "应为 this_month、last_month 或 YYYY-MM（半角数字）",
}
UNKNOWN_PROBLEM = "格式或取值无效"
#: What a location's first element means.
WHERE = {"query": "查询参数", "path": "路径参数", "body": "请求正文", "header": "请求头", "cookie": "Cookie"}
#: The parameters a person meets in the console, by their Chinese names.
LABELS = {"page": "页码", "limit": "每页条数", "offset": "起始位置", "period": "统计期间", "month": "月份"}
#: The answer to a ValueError nobody turned into a refusal of its own (logged, not quoted).
UNEXPECTED = "请求无法处理，请检查填写的内容后重试"
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]{0,63}")


def refusal(where: Sequence[str | int], kind: str, message: str | None = None) -> dict[str, Any]:
    """One entry of a 422's ``detail``: ``where`` (field names and indexes, never values),
    the error type and its message in Chinese."""
    field = ".".join(str(part) for part in where[1:]) if len(where) > 1 else ""
    if field in LABELS:
        field = f"{field}（{LABELS[field]}）"
    place = WHERE.get(str(where[0]), "请求") if where else "请求"
    problem = message or PROBLEMS.get(kind, UNKNOWN_PROBLEM)
    text = f"{place} {field}：{problem}" if field else f"{place}：{problem}"
    return {"loc": list(where), "msg": text, "type": kind}


def safe_location(parts: Iterable[object]) -> list[str | int]:
    """The location up to its first part that is neither a list index nor a short ASCII
    name (a field's name, or an unwanted field's: never a value, never 100 KB)."""
    kept: list[str | int] = []
    for part in parts:
        index = isinstance(part, int) and not isinstance(part, bool) and 0 <= part < 10_000
        if not (index or (isinstance(part, str) and _NAME.fullmatch(part))):
            break
        kept.append(part)  # type: ignore[arg-type]  # an int or a str, checked just above
    return kept


def _from_rejection(error: Mapping[str, Any]) -> list[str | int]:
    """processors.intake spells its location at the head of the message (``a.b: …``)."""
    where = safe_location(error.get("loc", ()))
    message = error.get("msg")
    if where == ["body"] and isinstance(message, str) and ": " in message:
        head = message.split(": ", 1)[0].replace("[", ".").replace("]", "")
        where += safe_location(
            int(p) if p.isascii() and p.isdigit() and len(p) < 5 else p for p in head.split(".") if p
        )
    return where


def validation_detail(errors: Sequence[Any]) -> list[dict[str, Any]]:
    """FastAPI's (or our own) validation errors, said again in Chinese without their input."""
    detail = []
    for error in errors[:10]:
        if not isinstance(error, Mapping):
            continue
        kind = str(error.get("type", "value_error"))
        kind = kind if _NAME.fullmatch(kind) else "value_error"
        detail.append(refusal(_from_rejection(error), kind))
    return detail or [refusal([], "value_error", UNEXPECTED)]


def is_console(path: str) -> bool:
    return path == "/console" or path.startswith("/console/")


def console_page(status: int, heading: str, lines: Sequence[str]) -> HTMLResponse:
    """A page of the console that needs no session (the refusal came before any route)."""
    items = "".join(f"<li>{escape(line)}</li>" for line in lines)
    return HTMLResponse(
        f'<!doctype html><html lang="zh-CN"><meta charset="utf-8"><title>{escape(heading)}</title>'
        f"<h1>{escape(heading)}</h1><ul>{items}</ul>"
        '<p><a href="/console">返回首页</a></p></html>',
        status_code=status,
    )


def answer_422(request: Request, detail: list[dict[str, Any]]) -> Response:
    if is_console(request.url.path):
        return console_page(422, "填写有误", [entry["msg"] for entry in detail])
    return JSONResponse({"detail": detail}, status_code=422)


#: Starlette's own refusals (no such path, method, ...), which say only their status's phrase.
STATUS_WORDS = {
    404: ("未找到", "没有这个地址"),
    405: ("方法不允许", "该地址不受理此请求方法"),
    406: ("无法提供", "无法以所要求的格式答复"),
    415: ("格式不受理", "不受理此内容类型"),
}


async def http_refusal(request: Request, exc: Exception) -> Response:
    """An HTTPException whose detail is only its status's English phrase (Starlette's own
    404 and 405) is said in Chinese; ours already are."""
    assert isinstance(exc, StarletteHTTPException)
    if exc.detail == HTTPStatus(exc.status_code).phrase:
        heading, text = STATUS_WORDS.get(exc.status_code, ("请求未受理", "请求未受理"))
        if is_console(request.url.path):
            return console_page(exc.status_code, heading, [text])
        exc = StarletteHTTPException(exc.status_code, text, exc.headers)
    return await http_exception_handler(request, exc)


def install(app: FastAPI) -> None:
    """The handlers for FastAPI's validation errors and for a stray ValueError."""

    async def invalid(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return answer_422(request, validation_detail(exc.errors()))

    async def value_error(request: Request, exc: Exception) -> Response:
        route = request.scope.get("route")
        log.warning(
            "api_value_error",
            error=type(exc).__name__,
            method=request.method,
            route=getattr(route, "path", None),  # the template, not the path asked for
        )
        return answer_422(request, [refusal([], "value_error", UNEXPECTED)])

    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(StarletteHTTPException, http_refusal)
    app.add_exception_handler(ValueError, value_error)
