"""Settings links: a config as a short URL-safe token (the Train page's `?cfg=`).

A token holds only the settings that differ from the declared defaults, so links
stay short and a link made before a new field existed still opens.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from tlcore.config import schema
from tlcore.config.messages import received
from tlcore.config.schema import RunConfig, apply_overrides
from tlcore.errors import ConfigError

LINK_MAX_CHARS = 4096


def changed_settings(cfg: RunConfig) -> dict[str, Any]:
    """The flat keys of `cfg` whose values differ from the declared defaults.

    Required fields (the dataset) are always included.
    """
    specs = schema.field_specs()
    return {key: value for key, value in cfg.flat().items()
            if specs[key].required or value != specs[key].default}


def link_token(cfg: RunConfig) -> str:
    """`cfg` as a short URL-safe text (base64url of the JSON of `changed_settings`)."""
    text = json.dumps(changed_settings(cfg), separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def from_link_token(token: str) -> RunConfig:
    """The config a `link_token` describes; missing keys take their defaults.

    Raises:
        ConfigError: if the token is too long, not base64url JSON of an object, or
            names an unknown key or an invalid value.
    """
    allowed = f"the base64url JSON of a settings object, at most {LINK_MAX_CHARS} characters"
    if not isinstance(token, str) or len(token) > LINK_MAX_CHARS:
        raise ConfigError(f"A settings link must hold {allowed}. Received: {received(token)}")
    try:
        text = base64.b64decode(token + "=" * (-len(token) % 4), altchars=b"-_", validate=True)
        values = json.loads(text.decode())
    except (binascii.Error, ValueError, RecursionError):
        raise ConfigError(f"A settings link must hold {allowed}. "
                          f"Received: {received(token)}") from None
    if not isinstance(values, dict):
        raise ConfigError(f"A settings link must hold {allowed}. Received: {received(values)}")
    return RunConfig.from_dict(apply_overrides({}, values))

