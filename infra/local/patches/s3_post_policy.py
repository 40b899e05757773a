"""Browser POST uploads held to their policy, as S3 holds them.

moto's `S3Response._bucket_response_post(self, request, bucket_name)` stores the form's
file under the form's key whatever the signed policy says: a presigned POST for a
999-byte PNG at one key takes 10 MB of anything at another, after its expiry. S3
checks the policy document (the form's ``Policy`` field, base64 JSON) first, and the
replacement does the same for any form carrying one, before moto stores anything:

- ``expiration`` passed: 403 AccessDenied "Invalid according to Policy: Policy expired."
- an ``eq`` (or ``{"field": value}``) or ``starts-with`` condition the form (or, for
  ``$bucket``, the URL's bucket) does not meet: 403 AccessDenied "Invalid according to
  Policy: Policy Condition failed: ["eq", "$key", "..."]";
- a form field no condition names (except ``x-amz-signature``, ``file``, ``policy`` and
  ``x-ignore-*``): 403 AccessDenied "Invalid according to Policy: Extra input fields: ...";
- a file outside ``content-length-range``: 400 EntityTooLarge or EntityTooSmall, with
  the proposed size and the bound;
- a policy that is no base64 JSON document: 400 InvalidPolicyDocument.

Field names match case-insensitively, values exactly. The expiration is compared with
the machine's clock, not the local cloud's shifted one: botocore writes it from the
machine's clock too. Signatures are not checked (moto checks none anywhere). A form
without a policy is moto's as before.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final
from xml.sax.saxutils import escape

from infra.local.patches.registry import Checks, Patch, original

_S3_RESPONSES: Final = "moto.s3.responses"
_CORE_RESPONSES: Final = "moto.core.responses"

# Form fields S3 lets through without a condition.
_UNCONDITIONED: Final = frozenset({"x-amz-signature", "file", "policy"})
_IGNORED_PREFIX: Final = "x-ignore-"


def _s3_now() -> datetime:
    """The instant S3 compares a policy's expiration with (tests move it)."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class _Refusal:
    status: int
    code: str
    message: str
    extra: tuple[tuple[str, int], ...] = ()

    def response(self) -> tuple[int, dict[str, str], str]:
        elements = "".join(f"<{name}>{value}</{name}>" for name, value in self.extra)
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{self.code}</Code><Message>{escape(self.message)}</Message>"
            f"{elements}<RequestId>0</RequestId></Error>"
        )
        return self.status, {"content-type": "application/xml"}, body


def _denied(reason: str) -> _Refusal:
    return _Refusal(403, "AccessDenied", f"Invalid according to Policy: {reason}")


def _invalid_policy(reason: str) -> _Refusal:
    return _Refusal(400, "InvalidPolicyDocument", f"Invalid Policy: {reason}")


def _decode(encoded: str) -> dict[str, Any] | _Refusal:
    try:
        document = json.loads(base64.b64decode(encoded, validate=True))
    except (binascii.Error, ValueError):
        return _invalid_policy("Invalid JSON.")
    if not isinstance(document, dict):
        return _invalid_policy("Invalid JSON.")
    return document


def _expired(document: Mapping[str, Any]) -> _Refusal | None:
    raw = document.get("expiration")
    if not isinstance(raw, str):
        return _invalid_policy("Policy missing expiration.")
    try:
        expiration = datetime.fromisoformat(raw)
    except ValueError:
        return _invalid_policy(f"Invalid 'expiration' value: '{raw}'")
    if expiration.tzinfo is None:
        expiration = expiration.replace(tzinfo=UTC)
    return _denied("Policy expired.") if _s3_now() >= expiration else None


def _as_list(condition: Any) -> list[Any] | None:
    """A condition as S3 names it in a refusal: ``["eq", "$field", value]``."""
    if isinstance(condition, dict) and len(condition) == 1:
        ((field, value),) = condition.items()
        return ["eq", f"${field}", value]
    if isinstance(condition, list) and condition:
        return condition
    return None


@dataclass(frozen=True)
class _Conditions:
    """A policy's conditions: on fields (operator, lower-case field name, value, the
    condition as S3 quotes it), and the file's size range."""

    fields: tuple[tuple[str, str, str, list[Any]], ...]
    size_range: tuple[int, int] | None


def _parse_conditions(conditions: list[Any]) -> _Conditions | _Refusal:
    on_fields = []
    size_range: tuple[int, int] | None = None
    for condition in conditions:
        rule = _as_list(condition)
        operator = str(rule[0]).lower() if rule else ""
        if rule is not None and operator == "content-length-range":
            bounds = rule[1:]
            if len(bounds) != 2 or not all(isinstance(b, int) and b >= 0 for b in bounds):
                return _invalid_policy(f"Invalid content-length-range: {json.dumps(rule)}")
            size_range = (bounds[0], bounds[1])
        elif (
            rule is not None
            and operator in ("eq", "starts-with")
            and len(rule) == 3
            and str(rule[1]).startswith("$")
        ):
            on_fields.append((operator, str(rule[1])[1:].lower(), str(rule[2]), rule))
        else:
            return _invalid_policy(f"Invalid Policy condition: {json.dumps(condition)}")
    return _Conditions(tuple(on_fields), size_range)


def _field_refusal(
    conditions: _Conditions, fields: Mapping[str, str], bucket_name: str
) -> _Refusal | None:
    for operator, field, expected, rule in conditions.fields:
        actual = bucket_name if field == "bucket" else fields.get(field, "")
        met = actual == expected if operator == "eq" else actual.startswith(expected)
        if not met:
            return _denied(f"Policy Condition failed: {json.dumps(rule)}")
    named = {field for _, field, _, _ in conditions.fields}
    extra = [
        name
        for name in fields
        if name not in _UNCONDITIONED and not name.startswith(_IGNORED_PREFIX) and name not in named
    ]
    return _denied(f"Extra input fields: {', '.join(extra)}") if extra else None


def _size_refusal(conditions: _Conditions, size: int) -> _Refusal | None:
    if conditions.size_range is None:
        return None
    low, high = conditions.size_range
    if size > high:
        return _Refusal(
            400,
            "EntityTooLarge",
            "Your proposed upload exceeds the maximum allowed size",
            (("ProposedSize", size), ("MaxSizeAllowed", high)),
        )
    if size < low:
        return _Refusal(
            400,
            "EntityTooSmall",
            "Your proposed upload is smaller than the minimum allowed size",
            (("ProposedSize", size), ("MinSizeAllowed", low)),
        )
    return None


def _policy_refusal(
    document: Mapping[str, Any], fields: Mapping[str, str], bucket_name: str, file_size: int
) -> _Refusal | None:
    expired = _expired(document)
    if expired is not None:
        return expired
    listed = document.get("conditions")
    if not isinstance(listed, list):
        return _invalid_policy("Policy missing conditions.")
    conditions = _parse_conditions(listed)
    if isinstance(conditions, _Refusal):
        return conditions
    # The fields are checked before the file arrives, its size as it does.
    return _field_refusal(conditions, fields, bucket_name) or _size_refusal(conditions, file_size)


def refusal(
    form: Mapping[str, str], bucket_name: str, file_size: int
) -> tuple[int, dict[str, str], str] | None:
    """S3's answer to a POST `form` whose policy refuses it (None: the policy lets it in,
    or the form has no policy)."""
    fields: dict[str, str] = {}
    for name, value in form.items():
        fields.setdefault(name.lower(), value)
    encoded = fields.get("policy")
    if encoded is None:
        return None
    document = _decode(encoded)
    found = (
        document
        if isinstance(document, _Refusal)
        else _policy_refusal(document, fields, bucket_name, file_size)
    )
    return found.response() if found is not None else None


def _bucket_response_post(self: Any, request: Any, bucket_name: str) -> Any:
    from moto.s3.responses import S3Response

    # moto's setup_class has read the form (`form_data`) and the file (`body`: bytes
    # from a file part, text from a plain `file` field).
    body = self.body if isinstance(self.body, bytes) else str(self.body or "").encode("utf-8")
    refused = refusal(self.form_data, bucket_name, len(body))
    if refused is not None:
        return refused
    return original(S3Response, "_bucket_response_post")(self, request, bucket_name)


def _settings() -> list[str]:
    from moto.s3.responses import S3Response

    if original(S3Response, "use_raw_body") is not True:
        return [f"{_S3_RESPONSES}.S3Response no longer keeps the raw body (the file's size)"]
    return []


PATCH: Final = Patch(
    name="s3_post_policy",
    checks=Checks(
        signatures=[
            (
                _S3_RESPONSES,
                "S3Response",
                "_bucket_response_post",
                ["self", "request", "bucket_name"],
            )
        ],
        sources=[
            (
                _S3_RESPONSES,
                "S3Response",
                "_bucket_response",
                ("return self._bucket_response_post(request, bucket_name)",),
                "every POST to a bucket goes through _bucket_response_post",
            ),
            (
                _S3_RESPONSES,
                "S3Response",
                "bucket_response",
                ("self.setup_class(request)", "self._send_response(response)"),
                "the form is parsed before, and a returned tuple is sent as the response",
            ),
            (
                _S3_RESPONSES,
                "S3Response",
                "_bucket_response_post",
                ('key = self.querystring["key"][0]', "self.backend.put_object("),
                "the form's key and file are stored only after the replacement let them in",
            ),
            (
                _CORE_RESPONSES,
                "BaseResponse",
                "setup_class",
                ("self.form_data = request.form", "self.body = uploaded.stream.read()"),
                "the form fields and the file's bytes the policy is checked against",
            ),
        ],
    ),
    targets=[(_S3_RESPONSES, "S3Response", "_bucket_response_post", _bucket_response_post)],
    settings=_settings,
)


def verify() -> None:
    """Raise `PatchError` naming what moved if moto no longer fits this patch."""
    PATCH.verify()
