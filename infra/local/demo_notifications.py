"""`make demo`'s notification acts: customers say how to reach them, and hear from us.

Before the other acts, customers store their contact details, language and marketing
consent (`PUT /v1/customers/{customerId}/profile`), so every later step of the demo
(codes, purchases, claims, cashback) is told to them as it happens. After them, the
last act reads what was sent as the customers would, from the local cloud's mailbox
and phones (`GET /_local/mailbox`), sends the reminder sweep twice on one day,
unsubscribes from the link in the reminder (the page, then RFC 8058's one-click POST),
prints the messages by template, locale and channel with `rebates notifications sent`,
and writes a few emails to `reports/emails/` for a person to open.

Like the other acts it is a client only.
"""

from __future__ import annotations

import base64
import email
import email.policy
import re
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from infra.local.demo import Demo

ROOT: Final = Path(__file__).resolve().parents[2]
EMAILS_DIR: Final = ROOT / "reports" / "emails"
REMINDER_RULE: Final = "OffersReminderSchedule"
# Two days before the store opening ends (2027-05-16 00:00 Tokyo): the reminder day of
# its in-store code OPENING500 (`reminders_days_before_expiry: [2]`), 09:00 in Tokyo.
REMINDER_NOW: Final = datetime(2027, 5, 14, 0, 0, tzinfo=UTC)
# In the summer cashback campaign's window, as the wallet act.
SUMMER_NOW: Final = datetime(2027, 7, 2, 16, 0, tzinfo=UTC)

PROFILES: Final[dict[str, dict[str, Any]]] = {
    "aiko": {
        "email": "aiko@example.jp",
        "phone": "+81 90-1234-5678",
        "locale": "ja",
        "country": "JP",
        "marketingOptIn": True,
    },
    "ben": {
        "email": "Ben@Example.com",
        "phone": "+1 202-555-0143",
        "locale": "en",
        "country": "US",
        "marketingOptIn": False,
    },
    "chika": {
        "email": "chika@example.jp",
        "phone": "+81 80-2345-6789",
        "locale": "ja",
        "country": "JP",
        "marketingOptIn": False,
    },
    "daichi": {"email": "daichi@example.jp", "locale": "ja", "marketingOptIn": True},
    "emi": {"email": "emi@example.co.uk", "locale": "en", "country": "GB", "marketingOptIn": False},
    "elke": {"email": "elke@example.de", "locale": "en", "country": "DE", "marketingOptIn": False},
}

HOSTILE_PROFILES: Final[list[tuple[str, dict[str, Any]]]] = [
    ("an address without a domain", {"email": "aiko@", "locale": "ja", "marketingOptIn": True}),
    (
        "a phone number without its country",
        {"phone": "090-1234-5678", "locale": "ja", "marketingOptIn": True},
    ),
    ("a language we do not write", {"locale": "fr", "marketingOptIn": False}),
    ("a country that does not exist", {"locale": "en", "country": "XX", "marketingOptIn": False}),
]


def act_profiles(demo: Demo) -> None:
    print("\n== Notifications: customers say how to reach them, in which language, and consent ==")
    http = demo.http
    for customer, profile in PROFILES.items():
        status, stored = http.call("PUT", f"/v1/customers/{customer}/profile", profile)
        if status != 200:
            raise SystemExit(f"demo failed: the profile of {customer}: {status} {stored}")
    _, aiko = http.call("GET", "/v1/customers/aiko/profile")
    _, ben = http.call("GET", "/v1/customers/ben/profile")
    demo.check(
        f"storefront: {len(PROFILES)} profiles stored; aiko's phone is kept as "
        f"{aiko.get('phone')}, ben's address as {ben.get('email')}",
        aiko.get("phone") == "+819012345678" and ben.get("email") == "Ben@example.com",
    )
    for what, body in HOSTILE_PROFILES:
        status, refused = http.call("PUT", "/v1/customers/aiko/profile", body)
        error = refused.get("error", {}) if isinstance(refused, dict) else {}
        paths = sorted({str(issue.get("path")) for issue in _issues(error)})
        demo.check(f"storefront: {what} is {status} {error.get('code')} at {paths}", status == 400)


def _issues(error: dict[str, Any]) -> list[dict[str, Any]]:
    details = error.get("details")
    if isinstance(details, dict):
        found = details.get("errors") or details.get("issues") or []
        return [issue for issue in found if isinstance(issue, dict)]
    if isinstance(details, list):
        return [issue for issue in details if isinstance(issue, dict)]
    return []


# -- the mailbox and the phone ------------------------------------------------------------


def _sent(demo: Demo) -> dict[str, Any]:
    _, sent = demo.http.call("GET", "/_local/mailbox", key=False)
    return sent if isinstance(sent, dict) else {}


def _mailbox(demo: Demo) -> list[EmailMessage]:
    """Every email the local SES accepted, oldest first, parsed as a mail client would."""
    messages = []
    for sent in _sent(demo).get("emails", []):
        if "raw" not in sent:
            continue
        parsed = email.message_from_string(sent["raw"], policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        messages.append(parsed)
    return messages


def _texts(demo: Demo) -> list[tuple[str, str]]:
    """Every SMS the local SNS accepted: (phone, text)."""
    return [(str(m["phoneNumber"]), str(m["message"])) for m in _sent(demo).get("sms", [])]


def _to(message: EmailMessage, address: str) -> bool:
    return address.lower() in str(message.get("To", "")).lower()


def _unsubscribe_url(message: EmailMessage) -> str | None:
    found = re.search(r"<(https?://[^>]+)>", str(message.get("List-Unsubscribe", "")))
    return found.group(1) if found else None


def _form(url: str, body: str) -> tuple[int, str]:
    request = urllib.request.Request(  # noqa: S310 - the local API
        url,
        data=body.encode(),
        method="POST",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    return _page(request)


def _page(request: urllib.request.Request | str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode("utf-8", "replace")


def write_email_html(message: EmailMessage, path: Path) -> None:
    """The HTML part with its inline images (``cid:``) as data URIs, openable offline."""
    html_part = message.get_body(preferencelist=("html",))
    if html_part is None:
        return
    html = html_part.get_content()
    for part in message.walk():
        content_id = str(part.get("Content-ID", "")).strip("<>")
        if content_id and part.get_content_maintype() == "image":
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                data = base64.b64encode(payload).decode()
                html = html.replace(
                    f"cid:{content_id}", f"data:{part.get_content_type()};base64,{data}"
                )
    path.write_text(html, encoding="utf-8")


def act_notifications(demo: Demo) -> None:
    print("\n== Notifications: what the customers were told, a reminder, an unsubscribe ==")
    http = demo.http

    # A purchase from Germany without marketing consent: thanked, without the next code.
    offset = int((SUMMER_NOW - datetime.now(UTC)).total_seconds())
    http.call("POST", "/_local/clock", {"offsetSeconds": offset}, key=False)
    order = {
        "orderId": "summer-3001",
        "customerId": "elke",
        "channel": "online",
        "placedAt": SUMMER_NOW.isoformat().replace("+00:00", "Z"),
        "currency": "USD",
        "items": [{"sku": "BAG-0", "category": "sleeping-bags", "quantity": 1, "unitPrice": 9000}],
        "total": 9000,
    }
    status, _ = http.call("POST", "/v1/purchases", order)
    http.call("POST", "/_local/drain", {"timeoutSeconds": 60}, key=False)
    mailbox = _mailbox(demo)
    thanked = ("purchase_thank_you", "next_purchase_code")
    ben = [m for m in mailbox if _to(m, "ben@example.com") and _template(m) in thanked]
    elke = [m for m in mailbox if _to(m, "elke@example.de") and _template(m) in thanked]
    ben_codes = sorted(set(re.findall(r"THX-[A-Z0-9]+", " ".join(map(_text_of, ben)))))
    demo.check(
        f"customer: ben (US, no marketing consent) is thanked for his orders with his "
        f"next-purchase code {ben_codes}; elke (Germany, no consent) is thanked "
        f"({len(elke)} email) without one",
        status == 202
        and len(ben_codes) == 1
        and len(elke) == 1
        and "THX-" not in _text_of(elke[0]),
    )

    # The reminder day of aiko's in-store code: the daily sweep fired twice sends once.
    before = len(_mailbox(demo))
    offset = int((REMINDER_NOW - datetime.now(UTC)).total_seconds())
    http.call("POST", "/_local/clock", {"offsetSeconds": offset}, key=False)
    for _ in range(2):
        http.call("POST", f"/_local/fire/{REMINDER_RULE}", {}, key=False)
        http.call("POST", "/_local/drain", {"timeoutSeconds": 60}, key=False)
    reminders = [m for m in _mailbox(demo)[before:] if _to(m, "aiko@example.jp")]
    url = _unsubscribe_url(reminders[0]) if reminders else None
    demo.check(
        f"customer: aiko (opted in) gets one reminder that OPENING500 expires in 2 days, "
        f"though the sweep ran twice ({len(reminders)} email), with List-Unsubscribe "
        "and List-Unsubscribe-Post headers",
        len(reminders) == 1
        and url is not None
        and reminders[0].get("List-Unsubscribe-Post") == "List-Unsubscribe=One-Click",
    )
    if url is None:
        return
    status, page = _page(url)
    demo.check(
        f"customer: the link opens the opt-out page in Japanese ({status}, lang "
        f"{_lang(page)}), which changes nothing until she confirms",
        status == 200 and _lang(page) == "ja" and _opted_in(demo, "aiko"),
    )
    status, _ = _form(url, "List-Unsubscribe=One-Click")
    again, _ = _form(url, "List-Unsubscribe=One-Click")
    demo.check(
        f"customer: her mail client's one-click POST opts her out ({status}; again: {again})",
        status == 200 and again == 200 and not _opted_in(demo, "aiko"),
    )
    tampered = url[:-3] + ("AAA" if not url.endswith("AAA") else "BBB")
    status, _ = _page(tampered)
    demo.check(f"storefront: a tampered token is a {status} page, not an error", status == 400)
    http.call("POST", "/_local/clock", {"offsetSeconds": 0}, key=False)

    _print_sent(demo)
    _write_emails(demo)


def _text_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    return str(part.get_content()) if part is not None else ""


def _template(message: EmailMessage) -> str:
    return str(message.get("X-Rebates-Template", ""))


def _lang(page: str) -> str | None:
    found = re.search(r"<html[^>]*\blang=\"([a-z-]+)\"", page)
    return found.group(1) if found else None


def _opted_in(demo: Demo, customer: str) -> bool:
    _, profile = demo.http.call("GET", f"/v1/customers/{customer}/profile")
    return bool(profile.get("marketingOptIn"))


def _print_sent(demo: Demo) -> None:
    sent = subprocess.run(
        [sys.executable, "-m", "cli.main", "--target", "local", "notifications", "sent"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    for line in sent.stdout.strip().splitlines():
        print(f"      {line}")
    texts = _texts(demo)
    demo.check(
        f"operator: `rebates notifications sent` lists what went out; {len(texts)} SMS "
        f"reached phones ({', '.join(sorted({phone for phone, _ in texts}))})",
        sent.returncode == 0 and bool(texts),
    )


def _write_emails(demo: Demo) -> None:
    EMAILS_DIR.mkdir(parents=True, exist_ok=True)
    written: Counter[str] = Counter()
    for message in _mailbox(demo):
        template = str(message.get("X-Rebates-Template", "email"))
        locale = str(message.get("Content-Language", "xx"))
        qr = any(part.get_content_maintype() == "image" for part in message.walk())
        name = f"{template}.{locale}{'.qr' if qr else ''}"
        if written[name]:
            continue
        written[name] += 1
        write_email_html(message, EMAILS_DIR / f"{name}.html")
    demo.check(
        f"marketer: {sum(written.values())} rendered emails written to "
        f"{EMAILS_DIR.relative_to(ROOT)}/ ({', '.join(sorted(written))})",
        bool(written),
    )
