"""Parse Openline's configuration from environment variables.

Kept free of Django imports so it can be tested as a pure function and so
``settings.py`` stays a thin mapping of this result onto Django names.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"0", "false", "no", "off", ""}


class ConfigError(Exception):
    """Raised when the environment asks for something incomplete or unsafe."""


@dataclass(frozen=True)
class Config:
    env: str
    debug: bool
    secret_key: str
    allowed_hosts: list[str]
    csrf_trusted_origins: list[str]
    database_url: str
    redis_url: str | None
    var_dir: Path
    trusted_proxies: list[ipaddress.IPv4Network | ipaddress.IPv6Network]
    public_url: str
    controller_name: str
    log_level: str
    secure_cookies: bool
    db_pool_min: int = 1
    db_pool_max: int = 16
    extra: dict[str, str] = field(default_factory=dict)
    # (failed attempts, window in seconds); see accounts/throttle.py
    login_rate_account: tuple[int, int] = (5, 900)
    login_rate_ip: tuple[int, int] = (20, 900)
    # API requests per token or per signed-in user: (requests, window in seconds); api/ratelimit.py
    api_rate: tuple[int, int] = (600, 60)
    login_concurrency: int = 1
    session_idle_timeout: int = 8 * 3600
    # Strict-Transport-Security max-age; production sends it (0 leaves HSTS to the proxy).
    hsts_seconds: int = 0
    hsts_include_subdomains: bool = False

    @property
    def production(self) -> bool:
        return self.env == "production"


def parse_bool(name: str, raw: str | None, default: bool) -> bool:
    """Parse a boolean variable, refusing anything ambiguous."""
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in TRUE_WORDS:
        return True
    if value in FALSE_WORDS:
        return False
    raise ConfigError(f"{name} must be one of true/false/1/0/yes/no/on/off, got {raw!r}")


def parse_list(raw: str | None) -> list[str]:
    """Split a comma separated variable into its non-empty, stripped items."""
    if not raw:
        return []
    return [item.strip() for item in raw.split(",") if item.strip()]


def parse_networks(
    name: str, raw: str | None
) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """Parse a comma separated list of IP addresses or CIDR networks."""
    networks = []
    for item in parse_list(raw):
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError as exc:
            raise ConfigError(f"{name}: {item!r} is not an IP address or network") from exc
    return networks


def parse_int(name: str, raw: str | None, default: int, minimum: int = 0) -> int:
    """Parse a whole number variable of at least ``minimum``."""
    if raw is None or not raw.strip():
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}")
    return value


def parse_rate(name: str, raw: str | None, default: tuple[int, int]) -> tuple[int, int]:
    """Parse "attempts/seconds" (e.g. "5/900": 5 failed attempts per 15 minutes)."""
    if raw is None or not raw.strip():
        return default
    try:
        attempts, window = (int(part) for part in raw.split("/", 1))
    except ValueError:
        raise ConfigError(
            f"{name} must look like 'attempts/seconds', e.g. '5/900', got {raw!r}"
        ) from None
    if attempts < 1 or window < 1:
        raise ConfigError(f"{name} needs at least 1 attempt per at least 1 second, got {raw!r}")
    return attempts, window


def _generated_secret(var_dir: Path) -> str:
    # Generated once and kept, so sessions and signed visitor tokens survive restarts.
    path = var_dir / "secret_key"
    if path.exists():
        return path.read_text().strip()
    var_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(50)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key)
    return key


def load_config(environ: Mapping[str, str]) -> Config:
    """Build the configuration from an environment mapping, failing loudly."""
    env = environ.get("OPENLINE_ENV", "development").strip().lower()
    if env not in {"development", "production"}:
        raise ConfigError(f"OPENLINE_ENV must be 'development' or 'production', got {env!r}")
    production = env == "production"

    var_dir = Path(environ.get("OPENLINE_VAR_DIR") or BASE_DIR / "var")
    debug = parse_bool("OPENLINE_DEBUG", environ.get("OPENLINE_DEBUG"), default=not production)
    allowed_hosts = parse_list(environ.get("OPENLINE_ALLOWED_HOSTS"))
    secret_key = environ.get("OPENLINE_SECRET_KEY", "").strip()

    if production:
        problems = []
        if not secret_key:
            problems.append("OPENLINE_SECRET_KEY is not set")
        elif len(secret_key) < 32:
            problems.append("OPENLINE_SECRET_KEY is shorter than 32 characters")
        if debug:
            problems.append("OPENLINE_DEBUG is on")
        if not allowed_hosts:
            problems.append("OPENLINE_ALLOWED_HOSTS is empty")
        elif "*" in allowed_hosts:
            problems.append("OPENLINE_ALLOWED_HOSTS contains '*' (name the hosts Openline serves)")
        if not parse_bool(
            "OPENLINE_SECURE_COOKIES", environ.get("OPENLINE_SECURE_COOKIES"), default=True
        ):
            problems.append(
                "OPENLINE_SECURE_COOKIES is off (session cookies would travel over http)"
            )
        if problems:
            raise ConfigError(
                "Openline refuses to start in production mode: " + "; ".join(problems) + "."
            )
    else:
        if not secret_key:
            secret_key = _generated_secret(var_dir)
        if not allowed_hosts:
            allowed_hosts = ["localhost", "127.0.0.1", "[::1]", "testserver"]

    database_url = (
        environ.get("DATABASE_URL", "").strip() or f"sqlite:///{var_dir / 'openline.sqlite3'}"
    )
    scheme = database_url.split(":", 1)[0]
    if scheme not in {"sqlite", "postgres", "postgresql", "pgsql"}:
        raise ConfigError(
            f"DATABASE_URL must be a sqlite:// or postgres:// URL, got scheme {scheme!r}"
        )

    redis_url = environ.get("REDIS_URL", "").strip() or None
    if redis_url and not redis_url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError("REDIS_URL must start with redis://, rediss:// or unix://")

    public_url = environ.get("OPENLINE_PUBLIC_URL", "").strip().rstrip("/")
    if production and not public_url:
        raise ConfigError(
            "Openline refuses to start in production mode: OPENLINE_PUBLIC_URL is not set "
            "(it is used in consent links sent to messengers and in the widget snippet)."
        )
    if public_url and not public_url.startswith(("http://", "https://")):
        raise ConfigError("OPENLINE_PUBLIC_URL must start with http:// or https://")
    if production and not public_url.startswith("https://"):
        raise ConfigError(
            "Openline refuses to start in production mode: OPENLINE_PUBLIC_URL must start with "
            "https:// (consent links and receipts must not travel over http)."
        )

    log_level = environ.get("OPENLINE_LOG_LEVEL", "INFO").strip().upper()
    if log_level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
        raise ConfigError(f"OPENLINE_LOG_LEVEL must be a logging level name, got {log_level!r}")

    return Config(
        env=env,
        debug=debug,
        secret_key=secret_key,
        allowed_hosts=allowed_hosts,
        csrf_trusted_origins=parse_list(environ.get("OPENLINE_CSRF_TRUSTED_ORIGINS")),
        database_url=database_url,
        redis_url=redis_url,
        var_dir=var_dir,
        trusted_proxies=parse_networks(
            "OPENLINE_TRUSTED_PROXIES", environ.get("OPENLINE_TRUSTED_PROXIES")
        ),
        public_url=public_url,
        controller_name=environ.get("OPENLINE_CONTROLLER_NAME", "").strip()
        or "Openline demo company",
        log_level=log_level,
        db_pool_min=parse_int("OPENLINE_DB_POOL_MIN", environ.get("OPENLINE_DB_POOL_MIN"), 1),
        db_pool_max=parse_int(
            "OPENLINE_DB_POOL_MAX", environ.get("OPENLINE_DB_POOL_MAX"), 16, minimum=1
        ),
        secure_cookies=parse_bool(
            "OPENLINE_SECURE_COOKIES", environ.get("OPENLINE_SECURE_COOKIES"), default=production
        ),
        login_rate_account=parse_rate(
            "OPENLINE_LOGIN_RATE_ACCOUNT", environ.get("OPENLINE_LOGIN_RATE_ACCOUNT"), (5, 900)
        ),
        login_rate_ip=parse_rate(
            "OPENLINE_LOGIN_RATE_IP", environ.get("OPENLINE_LOGIN_RATE_IP"), (20, 900)
        ),
        api_rate=parse_rate("OPENLINE_API_RATE", environ.get("OPENLINE_API_RATE"), (600, 60)),
        login_concurrency=parse_int(
            "OPENLINE_LOGIN_CONCURRENCY", environ.get("OPENLINE_LOGIN_CONCURRENCY"), 1, minimum=1
        ),
        hsts_seconds=parse_int(
            "OPENLINE_HSTS_SECONDS",
            environ.get("OPENLINE_HSTS_SECONDS"),
            365 * 24 * 3600 if production else 0,
        ),
        hsts_include_subdomains=parse_bool(
            "OPENLINE_HSTS_INCLUDE_SUBDOMAINS",
            environ.get("OPENLINE_HSTS_INCLUDE_SUBDOMAINS"),
            default=False,
        ),
        session_idle_timeout=parse_int(
            "OPENLINE_SESSION_IDLE_TIMEOUT", environ.get("OPENLINE_SESSION_IDLE_TIMEOUT"), 8 * 3600
        ),
    )
