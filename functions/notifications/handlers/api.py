"""The notifications API: customers' contact and consent, and the unsubscribe pages.

Routes (DESIGN "HTTP API"):

- ``PUT|GET /v1/customers/{customerId}/profile`` (API key): the whole profile. A PUT is
  idempotent by nature (the same body twice is one version and at most one consent
  entry), so it takes no ``Idempotency-Key``.
- ``GET|POST /v1/unsubscribe?token=`` (public: a mail client has no key; the signed token
  is the authorisation). GET shows the confirmation page in the customer's language and
  never changes anything: link scanners and mail clients prefetch links. POST opts out:
  ``List-Unsubscribe=One-Click`` is the RFC 8058 one-click a mail client sends, and
  ``confirm=yes`` the page's own button. A bad token is a 400 page, never an error body;
  a body that cannot be read is refused by the resolver (400, 413, 415) before the
  route sees it.

The handler parses, calls `ProfileStore` and shapes the answer; the store raises domain
errors, which `api_error` maps to statuses in one place.
"""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus
from typing import Annotated, Any, Final, Literal
from urllib.parse import urlencode

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Form, Path, Query
from aws_lambda_powertools.event_handler.openapi.types import (
    OpenAPIResponse,
    OpenAPIResponseContentModel,
    OpenAPIResponseContentSchema,
)
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import Field

from functions.core.api import ResolverPerThread, domain_errors, responses, status_mapping
from functions.core.clock import utc_now
from functions.core.errors import NotFound, Throttled
from functions.core.fields import MAX_CUSTOMER_ID_LENGTH, PRINTABLE
from functions.core.observability import instrumented, logger
from functions.core.settings import CoreSettings, load_settings
from functions.core.vocabulary import Locale, NotificationChannel
from functions.notifications import tokens
from functions.notifications.dal import ConsentChannel, ProfileInput, ProfileStore, UnsubscribeKey
from functions.notifications.errors import Contended, NotificationsError, ProfileNotFound
from functions.notifications.models import CustomerProfile
from functions.notifications.schemas import ProfileRequest, ProfileView

router = Router()
store = ProfileStore()
unsubscribe_key = UnsubscribeKey()

HTML: Final = "text/html; charset=utf-8"
ONE_CLICK: Final = "One-Click"
CONFIRMED: Final = "yes"

CustomerPath = Annotated[
    str, Path(min_length=1, max_length=MAX_CUSTOMER_ID_LENGTH, pattern=PRINTABLE)
]
# Any text: a malformed token is answered with the page that says so, not a JSON 400.
TokenQuery = Annotated[str | None, Query(description="The signed token from the message.")]


class ApiSettings(CoreSettings):
    unsubscribe_key_secret_arn: str = Field(alias="UNSUBSCRIBE_KEY_SECRET_ARN", min_length=1)


# -- domain errors to HTTP, in one place ------------------------------------------------

api_error = status_mapping({ProfileNotFound: NotFound, Contended: Throttled})
_ROUTES: list[Callable[..., Any]] = [domain_errors(NotificationsError, api_error)]

_CONTENDED = "contended: too many concurrent changes to this profile, retry shortly"


# -- profiles -------------------------------------------------------------------------


@router.put(
    "/v1/customers/<customerId>/profile",
    summary="Store a customer's contact details, language, country and marketing consent",
    tags=["customers"],
    middlewares=_ROUTES,
    responses=responses(
        HTTPStatus.OK,
        ProfileView,
        e400="invalid_request: details.errors names each bad field (body.email, body.phone...)",
        e429=_CONTENDED,
    ),
)
def put_profile(customerId: CustomerPath, body: ProfileRequest) -> ProfileView:
    profile = store.put(
        customerId,
        ProfileInput(
            email=body.email,
            phone=body.phone,
            locale=body.locale,
            country=body.country,
            marketing_opt_in=body.marketingOptIn,
        ),
        now=utc_now(),
        request_id=_request_id(),
    )
    return _view(profile)


@router.get(
    "/v1/customers/<customerId>/profile",
    summary="A customer's stored profile",
    tags=["customers"],
    middlewares=_ROUTES,
    responses=responses(HTTPStatus.OK, ProfileView, e404="profile_not_found"),
)
def get_profile(customerId: CustomerPath) -> ProfileView:
    profile = store.get(customerId)
    if profile is None:
        raise ProfileNotFound(customerId)
    return _view(profile)


def _view(profile: CustomerProfile) -> ProfileView:
    return ProfileView(
        customerId=profile.customer_id,
        email=profile.email,
        phone=profile.phone,
        locale=profile.language,
        country=profile.country,
        marketingOptIn=profile.marketing_opt_in,
        consentEntryId=profile.consent_entry_id,
        updatedAt=profile.updated_at,
    )


# -- unsubscribe ----------------------------------------------------------------------


def _pages(success: str) -> dict[int, OpenAPIResponse]:
    page: dict[str, OpenAPIResponseContentSchema | OpenAPIResponseContentModel] = {
        "text/html": {"schema": {"type": "string"}}
    }
    return {
        200: OpenAPIResponse(description=success, content=page),
        400: OpenAPIResponse(
            description="The link is not valid (missing, altered or unknown token): a page "
            "in both languages",
            content=page,
        ),
    }


@router.get(
    "/v1/unsubscribe",
    summary="The opt-out page for the link in a marketing message; changes nothing",
    tags=["customers"],
    responses=_pages("The confirmation page, in the customer's language"),
)
def unsubscribe_page(token: TokenQuery = None) -> Response[str]:
    verified = _verified(token)
    if verified is None:
        return _invalid_page()
    return _confirm_page(HTTPStatus.OK, *verified, token or "")


@router.post(
    "/v1/unsubscribe",
    summary="Opt out of marketing: RFC 8058 one-click, or the confirmation page's button",
    tags=["customers"],
    middlewares=_ROUTES,
    responses=_pages("Opted out (or already out): the done page"),
)
def unsubscribe(
    token: TokenQuery = None,
    one_click: Annotated[
        str | None,
        Form(alias="List-Unsubscribe", description="`One-Click`, as mail clients send it"),
    ] = None,
    confirm: Annotated[str | None, Form(description="`yes`, from the page's button")] = None,
) -> Response[str]:
    verified = _verified(token)
    if verified is None:
        return _invalid_page()
    customer_id, channel = verified
    how: ConsentChannel
    if one_click == ONE_CLICK:
        how = "one_click"
    elif confirm == CONFIRMED:
        how = "unsubscribe_link"
    else:
        # Neither form's field: nothing is changed, and the person sees the button again.
        return _confirm_page(HTTPStatus.BAD_REQUEST, customer_id, channel, token or "")
    profile = store.opt_out(customer_id, how, now=utc_now(), request_id=_request_id())
    logger.info(
        "marketing consent withdrawn" if profile else "unsubscribe for a customer without profile",
        extra={"customerId": customer_id, "via": how},
    )
    return _page(
        HTTPStatus.OK,
        "unsubscribe_done",
        profile.language if profile else None,
        channel=channel,
    )


def _verified(token: str | None) -> tuple[str, NotificationChannel] | None:
    """(customer, channel) the token names, or None for a token we did not sign."""
    key = unsubscribe_key.get(load_settings(ApiSettings).unsubscribe_key_secret_arn)
    try:
        return tokens.verify(key, token or "")
    except tokens.BadToken as refused:
        logger.info("unsubscribe token refused", extra={"reason": refused.message})
        return None


def _confirm_page(
    status: HTTPStatus, customer_id: str, channel: NotificationChannel, token: str
) -> Response[str]:
    profile = store.get(customer_id)
    return _page(
        status,
        "unsubscribe_confirm",
        profile.language if profile else None,
        # Relative: the button posts to the URL the page was opened at, whatever the
        # stage or domain in front of the API.
        action_url="?" + urlencode({"token": token}),
        channel=channel,
    )


def _invalid_page() -> Response[str]:
    return _page(HTTPStatus.BAD_REQUEST, "unsubscribe_invalid", None)


PageName = Literal["unsubscribe_confirm", "unsubscribe_done", "unsubscribe_invalid"]


def _page(
    status: HTTPStatus, page: PageName, locale: Locale | None, **context: Any
) -> Response[str]:
    # Imported here: the templates (Jinja2, Babel) are for the pages only, and the
    # profile routes, on the storefront's checkout path, should not pay their cold start.
    from functions.notifications import rendering

    return Response(
        status_code=status,
        content_type=HTML,
        body=rendering.render_page(page, locale, **context),
        # The pages hold a customer's token: no cache between them and the customer.
        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"},
    )


def _request_id() -> str | None:
    request_id = app.app.current_event.request_context.request_id
    return request_id or None


app = ResolverPerThread(router)


@instrumented
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    # Every route's environment, checked on every invocation (cached): a missing variable
    # fails the first request loudly, not only the first unsubscribe.
    load_settings(ApiSettings)
    return app.resolve(event, context)
