"""My profile: display name and picture; pictures re-encoded, served publicly and safely."""

from __future__ import annotations

import io
import time

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from PIL import Image

from openline.accounts import avatars
from openline.accounts.avatars import SIZE, avatar_url
from openline.accounts.models import Avatar
from openline.conversations.events import message_payload

pytestmark = pytest.mark.django_db

URL = "/console/profile/"


def photo(fmt="JPEG", size=(640, 480), exif=True) -> bytes:
    image = Image.new("RGB", size, (200, 30, 30))
    out = io.BytesIO()
    kwargs = {}
    if exif:
        data = Image.Exif()
        data[0x010F] = "SecretCam"  # Make
        data[0x9286] = "at home, 52.52N 13.40E"  # UserComment-like free text
        kwargs["exif"] = data.tobytes()
    image.save(out, format=fmt, **kwargs)
    return out.getvalue()


def upload(client, data: bytes, name="me.jpg", content_type="image/jpeg", **extra):
    file = SimpleUploadedFile(name, data, content_type=content_type)
    return client.post(URL, {"display_name": "Otto", "picture": file, **extra})


def test_every_role_has_a_profile_page(admin_client, operator_client, auditor_client):
    for client in (admin_client, operator_client, auditor_client):
        page = client.get(URL)
        assert page.status_code == 200 and "My profile" in page.text
    assert Client().get(URL).status_code == 302


def test_upload_is_reencoded_square_without_metadata(operator_client, operator):
    original = photo()
    assert b"SecretCam" in original
    response = upload(operator_client, original, display_name="Otto O.")
    assert response.status_code == 302
    operator.refresh_from_db()
    assert operator.display_name == "Otto O."
    assert len(operator.avatar_key) >= 20
    url = avatar_url(operator)
    assert url == f"/widget/avatars/{operator.avatar_key}.webp"
    served = Client().get(url)  # public: clients see it without signing in
    assert served.status_code == 200
    assert served["Content-Type"] == "image/webp"
    assert served["X-Content-Type-Options"] == "nosniff"
    assert "max-age=31536000" in served["Cache-Control"] and "public" in served["Cache-Control"]
    body = served.content
    assert b"SecretCam" not in body and b"52.52N" not in body and b"EXIF" not in body
    with Image.open(io.BytesIO(body)) as image:
        assert image.format == "WEBP"
        assert image.size == (SIZE, SIZE)
        assert not image.getexif()
        assert "icc_profile" not in image.info and "xmp" not in image.info


def test_new_upload_changes_the_url_and_removing_ends_it(operator_client, operator):
    upload(operator_client, photo(fmt="PNG", exif=False), name="a.png", content_type="image/png")
    operator.refresh_from_db()
    first = avatar_url(operator)
    upload(operator_client, photo())
    operator.refresh_from_db()
    second = avatar_url(operator)
    assert first != second
    assert Client().get(first).status_code == 404
    assert Avatar.objects.filter(user=operator).count() == 1
    page = operator_client.get(URL)
    assert second in page.text and "Remove picture" in page.text
    removed = operator_client.post(URL, {"action": "remove_picture"})
    assert removed.status_code == 302
    operator.refresh_from_db()
    assert operator.avatar_key == "" and avatar_url(operator) == ""
    assert Client().get(second).status_code == 404


@pytest.mark.parametrize(
    ("data", "name", "content_type"),
    [
        (b"GIF89a" + b"\x00" * 100, "x.gif", "image/gif"),
        (
            b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>",
            "x.svg",
            "image/svg+xml",
        ),
        (b"<html><script>alert(1)</script></html>", "x.jpg", "image/jpeg"),
        (b"\xff\xd8\xff\xe0 truncated jpeg", "x.jpg", "image/jpeg"),
    ],
)
def test_bad_files_refused(operator_client, operator, data, name, content_type):
    response = upload(operator_client, data, name=name, content_type=content_type)
    assert response.status_code == 200
    assert "Upload a JPEG, PNG or WebP picture." in response.text
    operator.refresh_from_db()
    assert operator.avatar_key == ""


def test_gif_image_refused(operator_client, operator):
    response = upload(operator_client, photo(fmt="GIF", exif=False), name="x.gif")
    assert "Upload a JPEG, PNG or WebP picture." in response.text


def test_too_large_file_refused(operator_client, operator):
    noise = io.BytesIO()
    Image.effect_noise((1400, 1400), 100).convert("RGB").save(noise, format="PNG")
    assert len(noise.getvalue()) > 2 * 1024 * 1024
    response = upload(operator_client, noise.getvalue(), name="big.png")
    assert "larger than 2 MB" in response.text
    operator.refresh_from_db()
    assert operator.avatar_key == ""


def flat_png(size, mode="RGB") -> bytes:
    out = io.BytesIO()
    Image.new(mode, size).save(out, format="PNG")
    return out.getvalue()


def test_huge_dimensions_in_a_small_file_are_refused_before_decoding(operator_client, operator):
    # 6300 x 6300 pixels in ~110 KB: decoding it would take ~160 MB per copy.
    bomb = flat_png((6300, 6300))
    assert len(bomb) < 200 * 1024
    started = time.monotonic()
    response = upload(operator_client, bomb, name="big.png", content_type="image/png")
    assert time.monotonic() - started < 1.0
    assert response.status_code == 200
    assert "The picture is larger than 4096 × 4096 pixels" in response.text
    # Either side counts.
    response = upload(operator_client, flat_png((4097, 16)), name="wide.png")
    assert "larger than 4096 × 4096 pixels" in response.text
    operator.refresh_from_db()
    assert operator.avatar_key == ""


@pytest.mark.parametrize(
    ("fmt", "size", "mode"),
    [
        ("JPEG", (4096, 3072), "RGB"),
        ("PNG", (4096, 4096), "RGBA"),
        ("PNG", (3000, 1200), "P"),
        ("PNG", (50, 80), "LA"),
        ("WEBP", (1200, 4000), "RGB"),
    ],
)
def test_large_and_small_pictures_of_every_kind_become_the_square(fmt, size, mode):
    image = Image.new(mode, size)
    out = io.BytesIO()
    image.save(out, format=fmt)
    webp = avatars.reencode(SimpleUploadedFile("p", out.getvalue()))
    with Image.open(io.BytesIO(webp)) as result:
        assert (result.format, result.size) == ("WEBP", (SIZE, SIZE))


def test_exif_orientation_is_applied_to_the_centred_square():
    # 600 x 300, left half of the centred square red, right half blue; EXIF says "rotate 90°
    # clockwise to view": upright, red is at the top and blue at the bottom.
    image = Image.new("RGB", (600, 300), (0, 0, 255))
    image.paste((255, 0, 0), (0, 0, 300, 300))
    exif = Image.Exif()
    exif[0x0112] = 6
    out = io.BytesIO()
    image.save(out, format="JPEG", exif=exif.tobytes(), quality=95)
    webp = avatars.reencode(SimpleUploadedFile("p.jpg", out.getvalue()))
    with Image.open(io.BytesIO(webp)) as result:
        rgb = result.convert("RGB")
        top, bottom = rgb.getpixel((SIZE // 2, 10)), rgb.getpixel((SIZE // 2, SIZE - 10))
        assert not result.getexif()
    assert top[0] > 200 and top[2] < 60, top
    assert bottom[2] > 200 and bottom[0] < 60, bottom


def test_one_picture_at_a_time_others_are_asked_to_try_again(
    operator_client, operator, monkeypatch
):
    monkeypatch.setattr(avatars, "BUSY_WAIT", 0.2)
    assert avatars._reencoding.acquire(timeout=5)  # another upload is being re-encoded
    try:
        response = upload(operator_client, photo())
    finally:
        avatars._reencoding.release()
    assert response.status_code == 200
    assert "busy with another picture; try again in a moment" in response.text
    operator.refresh_from_db()
    assert operator.avatar_key == ""
    # Once it is done, the same upload goes through.
    assert upload(operator_client, photo()).status_code == 302
    operator.refresh_from_db()
    assert operator.avatar_key


def test_an_oversized_request_is_refused_before_its_body_is_parsed(operator_client, operator):
    response = upload(operator_client, b"\xff" * (3 * 1024 * 1024), name="huge.jpg")
    assert response.status_code == 413
    assert "larger than 2 MB" in response.text and "My profile" in response.text
    operator.refresh_from_db()
    assert operator.avatar_key == ""


def test_the_profile_form_still_needs_its_csrf_token(operator):
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(operator)
    response = strict.post(URL, {"display_name": "Mallory"})
    assert response.status_code == 403
    operator.refresh_from_db()
    assert operator.display_name != "Mallory"
    page = strict.get(URL)
    token = page.cookies["csrftoken"].value
    response = strict.post(URL, {"display_name": "Otto", "csrfmiddlewaretoken": token})
    assert response.status_code == 302
    operator.refresh_from_db()
    assert operator.display_name == "Otto"


def test_unknown_avatar_key_is_404(client):
    assert client.get("/widget/avatars/" + "a" * 32 + ".webp").status_code == 404
    assert client.get("/widget/avatars/../../etc.webp").status_code == 404


def test_message_payload_carries_the_avatar_without_extra_queries(
    operator_client, operator, channel, django_assert_num_queries
):
    from openline.conversations.models import Message
    from openline.livechat.tests.helpers import consented_visitor

    upload(operator_client, photo())
    operator.refresh_from_db()
    started, _ = consented_visitor(channel)
    from openline.conversations import actions

    actions.send_reply(
        conversation=started.conversation, actor=operator, text="Hi", client_id="op1"
    )
    messages = list(Message.objects.select_related("author").order_by("id"))
    with django_assert_num_queries(0):
        payloads = [message_payload(m) for m in messages]
    client_message = payloads[0]
    assert client_message["avatar"] == ""
    by_operator = [p for p in payloads if p["sender"] == "operator"]
    assert by_operator
    for payload in by_operator:
        assert payload["avatar"] == avatar_url(operator)
