"""Save to CRM prefilled from the conversation: profile first, then the client's own messages."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from openline.conversations import actions
from openline.conversations.models import Message
from openline.crm.prefill import emails_in, names_in, phones_in, prefill_for
from openline.crm.tests.conftest import make_chat


def save_url(conversation) -> str:
    return f"/console/crm/conversations/{conversation.pk}/save/"


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("Hi, my name is Jane Doe and I need a quote", "Jane Doe"),
        ("my name is jane doe and i have a question", "Jane Doe"),
        ("Hello! I'm Jane.", "Jane"),
        ("Guten Tag, ich heiße Jürgen Müller-Lüdenscheidt.", "Jürgen Müller-Lüdenscheidt"),
        ("Mein Name ist Zoë O'Neill", "Zoë O'Neill"),
        ("Здравствуйте, меня зовут Иван", "Иван"),
        ("This is Anna from ACME", "Anna"),
    ],
)
def test_a_name_the_client_gives_for_themselves(text, name):
    assert names_in(text) == [name]


@pytest.mark.parametrize(
    "text",
    [
        "I am looking for a new plan",
        "I am German and need help",
        "I'm in Berlin next week",
        "i am fine thanks",
        "The name is on the invoice",
        "Can you ask Jane Doe?",
    ],
)
def test_no_name_where_none_is_given(text):
    assert names_in(text) == []


def test_emails_are_found_and_validated():
    text = "Write to Jane.Doe@Example.com. Or jane@work.example.org, not jane@ or @example.com"
    assert emails_in(text) == ["Jane.Doe@Example.com", "jane@work.example.org"]


@pytest.mark.parametrize(
    ("text", "phones"),
    [
        ("Call me at +49 (30) 1234-567 or 030 1234567", ["+49 (30) 1234-567", "030 1234567"]),
        ("mobile: 0176 12345678", ["0176 12345678"]),
        ("(030) 1234567", ["(030) 1234567"]),
        ("+7 912 345-67-89", ["+7 912 345-67-89"]),
        ("١٢٣٤٥٦٧٨٩ is my number", ["١٢٣٤٥٦٧٨٩"]),
        ("call 12345", []),
        ("my order 12345678 is late", []),
        ("delivered on 2024-05-01", []),
        ("a 16 digit card 1234 5678 9012 3456", []),
        ("jane1234567@example.com", []),
    ],
)
def test_phone_numbers_with_7_to_15_digits(text, phones):
    assert phones_in(text) == phones


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=600))
def test_arbitrary_text_never_crashes(text):
    for found in (names_in(text), emails_in(text), phones_in(text)):
        assert isinstance(found, list) and all(isinstance(v, str) and v for v in found)
    assert all(len(p) <= 40 for p in phones_in(text))


@settings(max_examples=150, deadline=None)
@given(
    st.text(
        alphabet=st.characters(
            categories=["L", "M", "P", "S", "Z", "Cf"], exclude_characters="\x00"
        ),
        max_size=200,
    )
)
def test_odd_unicode_around_a_name_and_number_still_finds_them(noise):
    text = f"{noise}\nmy name is Jane Doe.\nMy phone is +49 30 1234567\n{noise}"
    assert "Jane Doe" in names_in(text)
    assert "+49 30 1234567" in phones_in(text)


@pytest.mark.django_db
def test_the_form_is_prefilled_from_the_clients_messages_not_the_operators(
    operator, operator_client, channel
):
    chat = make_chat(
        channel,
        texts=[
            "Hello, my name is Jane Doe",
            "You can reach me at jane@example.com or +49 30 1234-567",
        ],
    )
    actions.send_reply(
        conversation=chat, actor=operator, text="I am Otto, write to otto@shop.example"
    )

    found = prefill_for(chat)
    assert found.initial() == {
        "name": "Jane Doe",
        "email": "jane@example.com",
        "phone": "+49 30 1234-567",
    }
    page = operator_client.get(save_url(chat)).text
    assert 'value="Jane Doe"' in page and 'value="jane@example.com"' in page
    assert 'value="+49 30 1234-567"' in page
    assert "Found in the client's messages" in page
    assert "otto" not in page.lower().split("found in")[1].split("</form>")[0]


@pytest.mark.django_db
def test_the_messenger_profile_comes_first_and_a_correction_wins(channel):
    chat = make_chat(
        channel,
        name="Ivan Petrov",
        origin="telegram",
        external_id="1001",
        texts=["I am Vanya", "mail: old@example.com", "sorry, new@example.com is right"],
    )
    found = prefill_for(chat)
    assert found.name is not None and found.name.value == "Ivan Petrov"
    assert found.name.message_id is None and "messenger profile" in found.name.source
    assert found.email is not None and found.email.value == "new@example.com"
    assert found.others == {"name": ["Vanya"], "email": ["old@example.com"]}


@pytest.mark.django_db
def test_two_different_names_are_ambiguous(channel):
    chat = make_chat(channel, texts=["My name is Jane", "I'm Maria, Jane's colleague"])
    assert prefill_for(chat).name is None
    again = make_chat(channel, texts=["My name is Jane", "I am Jane Doe"])
    assert prefill_for(again).initial()["name"] == "Jane Doe"


@pytest.mark.django_db
def test_an_erased_client_prefills_nothing(administrator, channel):
    from openline.conversations.erasure import erase_visitor

    chat = make_chat(channel, name="Jane", texts=["my name is Jane, jane@example.com"])
    erase_visitor(actor=administrator, visitor=chat.visitor)
    chat.visitor.refresh_from_db()
    assert prefill_for(chat).initial() == {"name": "", "email": "", "phone": ""}
    assert not Message.objects.filter(conversation=chat).exists()


@pytest.mark.django_db
@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(texts=st.lists(st.text(max_size=300), min_size=1, max_size=4))
def test_the_save_form_renders_whatever_the_client_wrote(operator_client, channel, texts):
    chat = make_chat(channel, texts=[t.replace("\x00", "") for t in texts])
    response = operator_client.get(save_url(chat))
    assert response.status_code == 200
    assert "<script>alert" not in response.text
