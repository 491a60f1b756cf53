"""Staff pictures: re-encoded with Pillow, stored in the database, served at unguessable URLs.

An upload is decoded, cropped to a centred square, scaled to ``SIZE``, turned upright and
written again as WebP; nothing of the original file (EXIF, GPS, comments, colour profiles)
survives. Each upload gets a new random key, so the public URL can be cached for a year.

Memory stays bounded: the dimensions are checked before any pixel is decoded (``MAX_SIDE``),
a JPEG is decoded at a reduced scale, every image is shrunk before any conversion, and only one
picture is re-encoded at a time in a process (others are told to try again).
"""

from __future__ import annotations

import io
import logging
import secrets
import threading

from django.core.exceptions import ValidationError
from django.db import transaction
from django.urls import reverse
from PIL import Image, UnidentifiedImageError

from openline.accounts.models import Avatar, User

log = logging.getLogger("openline.audit.accounts")

MAX_UPLOAD = 2 * 1024 * 1024
# A whole profile form with a picture of MAX_UPLOAD; larger requests are refused unread.
MAX_REQUEST = MAX_UPLOAD + 512 * 1024
SIZE = 160
ACCEPTED_FORMATS = {"JPEG", "PNG", "WEBP"}
# Refuse decompression bombs (a tiny PNG can declare any size) before decoding: at most
# 4096 x 4096 pixels, 64 MB decoded even with an alpha channel.
MAX_SIDE = 4096
# Only one re-encode at a time per process; another upload waits this long, then is refused.
BUSY_WAIT = 2.0
_reencoding = threading.BoundedSemaphore(1)
EXIF_ORIENTATION = 0x0112
# EXIF orientation -> the transpose that makes the picture upright (as ImageOps.exif_transpose).
UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
KEY_RE = r"[A-Za-z0-9_-]{20,40}"


def avatar_url(user) -> str:
    """Return the public path of the user's picture, or "" (no query: the key is on the user)."""
    key = getattr(user, "avatar_key", "") if user is not None else ""
    if not key:
        return ""
    return reverse("livechat_public:avatar", kwargs={"key": key})


def reencode(upload) -> bytes:
    """Return the upload as a small square WebP without metadata; raise ValidationError."""
    if upload.size > MAX_UPLOAD:
        raise ValidationError("The picture is larger than 2 MB.")
    data = upload.read(MAX_UPLOAD + 1)
    if len(data) > MAX_UPLOAD:
        raise ValidationError("The picture is larger than 2 MB.")
    if not _reencoding.acquire(timeout=BUSY_WAIT):
        raise ValidationError("The server is busy with another picture; try again in a moment.")
    try:
        return _square_webp(data)
    finally:
        _reencoding.release()


def _square_webp(data: bytes) -> bytes:
    """Decode ``data`` as little as needed and write it again as a ``SIZE`` square WebP."""
    refused = ValidationError("Upload a JPEG, PNG or WebP picture.")
    try:
        with Image.open(io.BytesIO(data)) as image:
            # Only the header is read so far: no pixel is decoded before these checks.
            if image.format not in ACCEPTED_FORMATS:
                raise refused
            if image.width > MAX_SIDE or image.height > MAX_SIDE:
                raise ValidationError(
                    f"The picture is larger than {MAX_SIDE} × {MAX_SIDE} pixels; "
                    "upload a smaller one."
                )
            orientation = image.getexif().get(EXIF_ORIENTATION, 1)
            if image.format == "JPEG":
                # Decode at 1/2, 1/4 or 1/8 scale, keeping both sides at least 2 x SIZE.
                image.draft("RGB", (2 * SIZE, 2 * SIZE))
            image.load()
            square = _shrink_to_square(image)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        raise refused from None
    upright = UPRIGHT.get(orientation)
    if upright is not None:
        square = square.transpose(upright)
    # A fresh image carries no info dict: no EXIF, XMP or ICC profile is written.
    clean = Image.new("RGBA", square.size)
    clean.paste(square.convert("RGBA"))
    out = io.BytesIO()
    clean.save(out, format="WEBP", quality=85, method=4)
    return out.getvalue()


def _shrink_to_square(image: Image.Image) -> Image.Image:
    """Return the centred square of ``image`` scaled to ``SIZE``, shrinking before converting.

    The centred square of a rotated picture is the rotated centred square, so turning it
    upright can wait until it is small.
    """
    if image.mode not in ("RGB", "RGBA", "L", "LA"):
        # Palette, 1-bit, 16-bit or CMYK pixels cannot be reduced; at most MAX_SIDE squared.
        has_alpha = image.mode in ("PA", "RGBa") or "transparency" in image.info
        image = image.convert("RGBA" if has_alpha else "RGB")
    width, height = image.size
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    box = (left, top, left + side, top + side)
    factor = side // (2 * SIZE)
    # reduce() averages whole blocks of pixels inside the box (RGB and L without a full-size
    # copy; with alpha, one premultiplied copy: at most 64 MB at MAX_SIDE).
    small = image.reduce(factor, box=box) if factor >= 2 else image.crop(box)
    return small.resize((SIZE, SIZE), Image.Resampling.LANCZOS)


@transaction.atomic
def set_avatar(*, user: User, upload) -> User:
    """Replace the user's picture with the re-encoded upload under a new key."""
    image = reencode(upload)
    key = secrets.token_urlsafe(24)
    Avatar.objects.update_or_create(
        user=user, defaults={"key": key, "image": image, "content_type": "image/webp"}
    )
    user.avatar_key = key
    user.save(update_fields=["avatar_key"])
    log.info("user %s changed their picture", user.get_username())
    return user


@transaction.atomic
def remove_avatar(*, user: User) -> User:
    """Delete the user's picture; its URL stops working at once."""
    Avatar.objects.filter(user=user).delete()
    user.avatar_key = ""
    user.save(update_fields=["avatar_key"])
    log.info("user %s removed their picture", user.get_username())
    return user


@transaction.atomic
def set_display_name(*, user: User, display_name: str) -> User:
    """Change the name clients and colleagues see for the user."""
    user.display_name = display_name.strip()[:150]
    user.save(update_fields=["display_name"])
    return user


def avatar_image(key: str) -> tuple[bytes, str] | None:
    """Return (bytes, content type) of the picture with this key, or None."""
    row = Avatar.objects.filter(key=key).values_list("image", "content_type").first()
    if row is None:
        return None
    return bytes(row[0]), row[1]
