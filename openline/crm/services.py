"""The only write path for the CRM: saving clients, matching, conversion, notes, deletion.

Views, the messenger connectors and the API call these functions; nothing else
writes a CRM model. Every function takes the acting user explicitly. The code lives
in one module per concern; this module keeps the public names in one place.
"""

from __future__ import annotations

from openline.consent.services import current_state, record_consent
from openline.crm.access import (
    MESSENGER_ORIGINS,
    actor_label,
    can_delete,
    can_see_item,
    can_use_channel,
    is_unconfirmed_messenger_client,
    items_with_latest_consent_state,
    log_change,
    visible_items,
)
from openline.crm.deletion import (
    AlreadyDeleted,
    delete_client_data,
    deletion_summary,
    subject_access_export,
)
from openline.crm.identities import (
    MATCH_WORDS,
    Identities,
    Match,
    Matching,
    add_identities,
    find_match,
    find_matching,
    parse_identities,
)
from openline.crm.items import add_note, convert_to_contact, identity_displays, update_item
from openline.crm.saving import (
    DUPLICATE_NOTE,
    OPERATOR_IP_REASON,
    SaveResult,
    conversation_link,
    link_messenger_client,
    preview_match,
    public_base_url,
    save_conversation_to_crm,
)

__all__ = [
    "DUPLICATE_NOTE",
    "MATCH_WORDS",
    "MESSENGER_ORIGINS",
    "OPERATOR_IP_REASON",
    "AlreadyDeleted",
    "Identities",
    "Match",
    "Matching",
    "SaveResult",
    "actor_label",
    "add_identities",
    "add_note",
    "can_delete",
    "can_see_item",
    "can_use_channel",
    "conversation_link",
    "convert_to_contact",
    "current_state",
    "delete_client_data",
    "deletion_summary",
    "find_match",
    "find_matching",
    "identity_displays",
    "is_unconfirmed_messenger_client",
    "items_with_latest_consent_state",
    "link_messenger_client",
    "log_change",
    "parse_identities",
    "preview_match",
    "public_base_url",
    "record_consent",
    "save_conversation_to_crm",
    "subject_access_export",
    "update_item",
    "visible_items",
]
