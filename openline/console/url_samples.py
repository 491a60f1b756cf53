def url_samples(*, channel, administrator, **_) -> dict[str, dict]:
    """Arguments that reach each consent console URL (the role matrix test uses them)."""
    from openline.consent.models import ConsentMethod, ConsentOrigin, ConsentState, SourceType
    from openline.consent.services import record_consent
    from openline.conversations.models import Visitor
    from openline.openchannels.services import consent_settings

    agreement = channel.agreement
    version = agreement.current_version
    from openline.conversations import actions

    visitor = Visitor.objects.create(origin="livechat", channel=channel, name="Sample Visitor")
    # The record points at the conversation: auditors read the transcripts records point to.
    conversation = actions.start_conversation(
        channel=channel, visitor=visitor, page_url="https://example.com/"
    )
    record = record_consent(
        visitor=visitor,
        version=version,
        language="en",
        state=ConsentState.GIVEN,
        method=ConsentMethod.CLICKED_ACCEPT,
        origin=ConsentOrigin.LIVECHAT,
        source_type=SourceType.WEBSITE,
        address="https://example.com/",
        ip="203.0.113.7",
        channel=channel,
        channel_settings=consent_settings(channel),
        conversation=conversation,
    )
    from django.utils import timezone

    from openline.consent.models import VerificationRun

    run = VerificationRun.objects.create(created_at=timezone.now())
    return {
        "consent:transcript": {"conversation_id": conversation.pk},
        "consent:registry_run": {"pk": run.pk},
        "consent:registry_run_status": {"pk": run.pk},
        "consent:agreement_edit": {"pk": agreement.pk},
        "consent:agreement_languages": {"pk": agreement.pk},
        "consent:agreement_versions": {"pk": agreement.pk},
        "consent:version_detail": {"pk": agreement.pk, "number": version.number},
        "consent:version_diff": {"pk": agreement.pk, "number": version.number},
        "consent:agreement_set_active": {"pk": agreement.pk},
        "consent:record_detail": {"record_uuid": record.uuid},
        "consent:record_receipt": {"record_uuid": record.uuid},
    }
