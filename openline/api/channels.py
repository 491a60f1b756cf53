"""Open Channels API: list, read, create and change channels and their connectors.

Administrators write; operators read the channels they answer (another channel is 404, as if
it did not exist); auditors do not see channels, as in the console. Every change goes through
the services the console uses. Messenger credentials are write-only: no answer carries them.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal, cast

from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import HttpRequest
from ninja import Field, Query, Router, Schema
from ninja.errors import HttpError
from ninja.responses import Status

from openline.accounts.models import Role, User
from openline.accounts.permissions import has_role
from openline.connectors import setup
from openline.connectors.registry import platform_for
from openline.consent.models import Agreement
from openline.core.api_errors import errors
from openline.core.params import MAX_ID, AsciiDigits
from openline.livechat import origins
from openline.openchannels import appearance, hours, services
from openline.openchannels.models import (
    ConnectorKind,
    ConnectorMode,
    CrmItemKind,
    LauncherPosition,
    MessengerConsentMode,
    OpenChannel,
)

router = Router(tags=["open channels"])

STAFF = (Role.ADMINISTRATOR, Role.OPERATOR)


def _require(request: HttpRequest, *roles: str) -> User:
    if not has_role(request.user, *roles):
        raise HttpError(403, "Your role does not give access to Open Channels.")
    return cast(User, request.user)


def _visible(user: User):
    channels = OpenChannel.objects.select_related("agreement").prefetch_related(
        "operators", "connectors"
    )
    if user.role != Role.ADMINISTRATOR:
        channels = channels.filter(operators=user)
    return channels


def _channel(user: User, channel_id: int) -> OpenChannel:
    channel = _visible(user).filter(pk=channel_id).first() if 0 < channel_id <= MAX_ID else None
    if channel is None:
        raise HttpError(404, "No such Open Channel.")
    return channel


def _invalid(exc: ValidationError, prefix: str = "") -> HttpError:
    """A 422 whose message names each field that was refused."""
    if hasattr(exc, "error_dict"):
        parts = [
            f"{prefix}{field if field != '__all__' else 'channel'}: {' '.join(msgs)}"
            for field, msgs in exc.message_dict.items()
        ]
        return HttpError(422, "; ".join(parts))
    return HttpError(422, f"{prefix.rstrip('.') or 'channel'}: {' '.join(exc.messages)}")


class ConsentSettings(Schema):
    consent_enabled: bool
    consent_id: int | None
    messenger_consent_mode: str
    messenger_warning_text: str
    withdraw_keywords: list[str]
    unconfirmed_retention_days: int | None


class Appearance(Schema):
    display_name: str
    color: str
    greeting: str
    launcher_position: str
    hours_enabled: bool
    hours_timezone: str
    working_hours: list
    offline_message: str


class ConnectorOut(Schema):
    kind: str
    enabled: bool
    state: str = Field(description="not_connected, pending, connected or error")
    mode: str
    connected_at: dt.datetime | None
    last_event_at: dt.datetime | None
    last_error: str


class ChannelOut(Schema):
    id: int
    name: str
    code: str = Field(description="Public code used in the live chat's embed code")
    is_active: bool
    operator_ids: list[int]
    crm_item_kind: str
    consent: ConsentSettings
    appearance: Appearance
    allowed_websites: list[str] = Field(description="Origins allowed to show the live chat")
    connectors: list[ConnectorOut]
    created_at: dt.datetime
    updated_at: dt.datetime


def _connector_out(connector) -> dict:
    live = connector.kind == ConnectorKind.LIVECHAT
    return {
        "kind": connector.kind,
        "enabled": connector.is_enabled,
        "state": ("connected" if connector.is_enabled else "not_connected")
        if live
        else connector.state,
        "mode": connector.mode,
        "connected_at": connector.connected_at,
        "last_event_at": connector.last_event_at,
        "last_error": connector.last_error,
    }


def _out(channel: OpenChannel) -> dict:
    settings = services.consent_settings(channel)
    return {
        "id": channel.pk,
        "name": channel.name,
        "code": channel.code,
        "is_active": channel.is_active,
        "operator_ids": sorted(u.pk for u in channel.operators.all()),
        "crm_item_kind": channel.crm_item_kind,
        "consent": {
            "consent_enabled": settings["consent_enabled"],
            "consent_id": settings["agreement_id"],
            "messenger_consent_mode": settings["messenger_consent_mode"],
            "messenger_warning_text": settings["messenger_warning_text"],
            "withdraw_keywords": settings["withdraw_keywords"],
            "unconfirmed_retention_days": settings["unconfirmed_retention_days"],
        },
        "appearance": appearance.appearance_settings(channel),
        "allowed_websites": origins.allowed_origins(channel),
        "connectors": [_connector_out(c) for c in channel.connectors.all()],
        "created_at": channel.created_at,
        "updated_at": channel.updated_at,
    }


def _reload(user: User, channel: OpenChannel) -> dict:
    return _out(_channel(user, channel.pk))


class ChannelPage(Schema):
    items: list[ChannelOut]
    next_after: int | None = Field(None, description="Pass as `after` to get the next page.")


class ChannelFilters(Schema):
    active: bool | None = None
    after: Annotated[int, AsciiDigits] | None = Field(
        None, ge=0, le=MAX_ID, description="Channels with a greater id (keyset page)"
    )
    limit: Annotated[int, AsciiDigits] = Field(50, ge=1, le=200)


@router.get(
    "",
    response={200: ChannelPage, **errors(401, 403, 422)},
    summary="List the Open Channels the caller answers (administrators: all)",
)
def list_channels(request: HttpRequest, filters: Query[ChannelFilters]):
    user = _require(request, *STAFF)
    channels = _visible(user)
    if filters.active is not None:
        channels = channels.filter(is_active=filters.active)
    if filters.after is not None:
        channels = channels.filter(pk__gt=filters.after)
    page = list(channels.order_by("pk")[: filters.limit + 1])
    more = len(page) > filters.limit
    page = page[: filters.limit]
    return {"items": [_out(c) for c in page], "next_after": page[-1].pk if more else None}


@router.get(
    "/{channel_id}",
    response={200: ChannelOut, **errors(401, 403, 404, 422)},
    summary="Get one Open Channel with its consent settings and connectors",
)
def get_channel(request: HttpRequest, channel_id: int):
    user = _require(request, *STAFF)
    return _out(_channel(user, channel_id))


class ConsentIn(Schema):
    consent_enabled: bool | None = None
    consent_id: int | None = Field(None, description="The consent to ask for; null for none")
    messenger_consent_mode: MessengerConsentMode | None = None
    messenger_warning_text: str | None = Field(None, max_length=2000)
    withdraw_keywords: list[Annotated[str, Field(max_length=100)]] | None = Field(
        None, max_length=50
    )
    unconfirmed_retention_days: int | None = Field(None, ge=1, le=3650)


Clock = Annotated[str, Field(pattern=r"^[0-9]{1,2}:[0-9]{2}$")]
TimeRange = Annotated[list[Clock], Field(min_length=2, max_length=2)]
Week = Annotated[
    list[Annotated[list[TimeRange], Field(max_length=hours.MAX_RANGES_PER_DAY)]],
    Field(min_length=7, max_length=7),
]


class AppearanceIn(Schema):
    display_name: str | None = Field(None, max_length=120)
    color: str | None = Field(None, pattern=r"^#[0-9a-f]{6}$")
    greeting: str | None = Field(None, max_length=500)
    launcher_position: LauncherPosition | None = None
    hours_enabled: bool | None = None
    hours_timezone: str | None = Field(None, max_length=64)
    working_hours: Week | None = Field(
        None, description='Seven days, Monday first, each a list of ["HH:MM", "HH:MM"]'
    )
    offline_message: str | None = Field(None, max_length=500)


class ChannelIn(Schema):
    name: str = Field(min_length=1, max_length=120)
    operator_ids: list[int] = Field(default_factory=list, max_length=1000)
    crm_item_kind: CrmItemKind = CrmItemKind.LEAD
    consent_enabled: bool = False
    consent_id: int | None = None
    live_chat: bool = Field(True, description="Switch the live chat connector on")
    allowed_websites: list[Annotated[str, Field(max_length=300)]] = Field(
        default_factory=list, max_length=origins.MAX_ORIGINS
    )


class ChannelPatch(Schema):
    name: str | None = Field(None, min_length=1, max_length=120)
    is_active: bool | None = None
    operator_ids: list[int] | None = Field(None, max_length=1000)
    crm_item_kind: CrmItemKind | None = None
    consent: ConsentIn | None = None
    appearance: AppearanceIn | None = None
    live_chat: bool | None = Field(None, description="Switch the live chat connector on or off")
    allowed_websites: list[Annotated[str, Field(max_length=300)]] | None = Field(
        None, max_length=origins.MAX_ORIGINS
    )


def _operators(ids: list[int], field: str = "operator_ids") -> list[User]:
    wanted = set(ids)
    users = list(
        User.objects.filter(
            pk__in=[i for i in wanted if 0 < i <= MAX_ID],
            is_active=True,
            role__in=[Role.OPERATOR, Role.ADMINISTRATOR],
        )
    )
    missing = wanted - {u.pk for u in users}
    if missing:
        raise HttpError(
            422, f"{field}: no active operator or administrator with id {min(missing)}."
        )
    return users


def _agreement(consent_id: int | None, field: str = "consent_id") -> Agreement | None:
    if consent_id is None:
        return None
    agreement = (
        Agreement.objects.filter(pk=consent_id).first() if 0 < consent_id <= MAX_ID else None
    )
    if agreement is None:
        raise HttpError(422, f"{field}: no consent with this id.")
    return agreement


def _websites(values: list[str], field: str = "allowed_websites") -> list[str]:
    try:
        return origins.parse_origins("\n".join(values))
    except ValidationError as exc:
        raise HttpError(422, f"{field}: {' '.join(exc.messages)}") from exc


def _check_hours(values: dict) -> None:
    """Refuse a bad time zone or week with the field's name (the services say no field)."""
    checks = (
        ("hours_timezone", hours.validate_timezone),
        ("working_hours", hours.clean_week),
    )
    for name, check in checks:
        if name in values:
            try:
                check(values[name])
            except ValidationError as exc:
                raise HttpError(422, f"appearance.{name}: {' '.join(exc.messages)}") from exc


def _set_live_chat(user: User, channel: OpenChannel, enabled: bool | None, websites) -> None:
    connector = channel.connector(ConnectorKind.LIVECHAT)
    if enabled is None:
        enabled = connector.is_enabled if connector is not None else bool(websites)
    config = dict(connector.config) if connector is not None else {}
    if websites is not None:
        config[origins.CONFIG_KEY] = websites
    services.set_connector(
        actor=user, channel=channel, kind=ConnectorKind.LIVECHAT, is_enabled=enabled, config=config
    )


@router.post(
    "",
    response={201: ChannelOut, **errors(400, 401, 403, 422)},
    summary="Create an Open Channel (administrators)",
)
def create_channel(request: HttpRequest, payload: ChannelIn):
    user = _require(request, Role.ADMINISTRATOR)
    operators = _operators(payload.operator_ids)
    agreement = _agreement(payload.consent_id)
    websites = _websites(payload.allowed_websites)
    try:
        with transaction.atomic():
            channel = services.create_open_channel(
                actor=user,
                name=payload.name.strip(),
                operators=operators,
                consent_enabled=payload.consent_enabled,
                agreement=agreement,
                crm_item_kind=payload.crm_item_kind,
            )
            if payload.live_chat or websites:
                channel = _channel(user, channel.pk)
                _set_live_chat(user, channel, payload.live_chat, websites)
    except ValidationError as exc:
        raise _invalid(exc) from exc
    return Status(201, _reload(user, channel))


def _apply_consent(user: User, channel: OpenChannel, consent: ConsentIn) -> None:
    given = consent.model_fields_set
    unchanged = services.UNCHANGED

    def value(name: str, convert=lambda v: v):
        return convert(getattr(consent, name)) if name in given else unchanged

    services.update_consent_settings(
        actor=user,
        channel=channel,
        consent_enabled=(
            consent.consent_enabled
            if "consent_enabled" in given and consent.consent_enabled is not None
            else channel.consent_enabled
        ),
        agreement=(
            _agreement(consent.consent_id, "consent.consent_id")
            if "consent_id" in given
            else channel.agreement
        ),
        messenger_consent_mode=(
            value("messenger_consent_mode")
            if consent.messenger_consent_mode is not None
            else unchanged
        ),
        messenger_warning_text=value("messenger_warning_text"),
        withdraw_keywords=value("withdraw_keywords", lambda v: "\n".join(v or [])),
        unconfirmed_retention_days=value("unconfirmed_retention_days"),
    )


@router.patch(
    "/{channel_id}",
    response={200: ChannelOut, **errors(400, 401, 403, 404, 422)},
    summary="Change an Open Channel: only the fields given (administrators)",
)
def update_channel(request: HttpRequest, channel_id: int, payload: ChannelPatch):
    user = _require(request, Role.ADMINISTRATOR)
    channel = _channel(user, channel_id)
    given = payload.model_fields_set
    operators = (
        _operators(payload.operator_ids or [])
        if "operator_ids" in given and payload.operator_ids is not None
        else None
    )
    websites = (
        _websites(payload.allowed_websites)
        if "allowed_websites" in given and payload.allowed_websites is not None
        else None
    )
    try:
        with transaction.atomic():
            if {"name", "operator_ids", "crm_item_kind"} & given:
                services.update_open_channel(
                    actor=user,
                    channel=channel,
                    name=(payload.name or channel.name).strip(),
                    operators=operators if operators is not None else list(channel.operators.all()),
                    crm_item_kind=payload.crm_item_kind or channel.crm_item_kind,
                )
            if payload.is_active is not None:
                services.set_channel_active(
                    actor=user, channel=channel, is_active=payload.is_active
                )
            if payload.consent is not None:
                try:
                    _apply_consent(user, channel, payload.consent)
                except ValidationError as exc:
                    raise _invalid(exc, "consent.") from exc
            if payload.appearance is not None:
                values = payload.appearance.model_dump(exclude_unset=True, exclude_none=True)
                _check_hours(values)
                try:
                    appearance.update_appearance(actor=user, channel=channel, **values)
                except ValidationError as exc:
                    raise _invalid(exc, "appearance.") from exc
            if payload.live_chat is not None or websites is not None:
                _set_live_chat(user, _channel(user, channel.pk), payload.live_chat, websites)
    except ValidationError as exc:
        raise _invalid(exc) from exc
    return _reload(user, channel)


MessengerKind = Literal["telegram", "whatsapp", "facebook", "viber"]


class ConnectIn(Schema):
    secrets: dict[str, str] = Field(
        default_factory=dict,
        description="The platform's credentials (write-only: never returned). "
        "Empty values keep the stored ones.",
    )
    config: dict[str, str] = Field(default_factory=dict, description="Non-secret settings")
    mode: ConnectorMode | None = None


@router.put(
    "/{channel_id}/connectors/{kind}",
    response={200: ConnectorOut, **errors(400, 401, 403, 404, 422)},
    summary="Connect a messenger with its credentials, or change them (administrators)",
    description="The credentials are write-only. The answer tells whether the platform "
    "accepted them (`state`, `last_error`).",
)
def connect_messenger(
    request: HttpRequest, channel_id: int, kind: MessengerKind, payload: ConnectIn
):
    user = _require(request, Role.ADMINISTRATOR)
    channel = _channel(user, channel_id)
    connector = setup.connector_for(channel=channel, kind=kind)
    try:
        connector = setup.update_secrets(
            actor=user,
            connector=connector,
            secrets=payload.secrets,
            config=payload.config,
            mode=payload.mode,
            base=setup.base_url(request),
        )
    except ValidationError as exc:
        if hasattr(exc, "error_dict"):
            fields = {f: m for f, m in exc.message_dict.items()}
            config_fields = platform_for(kind).config_fields
            where = {
                f: "mode"
                if f == "mode"
                else f"config.{f}"
                if f in config_fields
                else f"secrets.{f}"
                for f in fields
            }
            raise HttpError(
                422, "; ".join(f"{where[f]}: {' '.join(m)}" for f, m in fields.items())
            ) from exc
        raise HttpError(422, f"secrets: {' '.join(exc.messages)}") from exc
    return _connector_out(connector)
