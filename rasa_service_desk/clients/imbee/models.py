"""Imbee's replies as pydantic models (written for pydantic 1.10 and 2 alike).

Every reply is an envelope `{"time", "code", "message", "body"}`; `code` 0 means success,
anything else an error even when the HTTP status is 200. The user's `pass` and `apikey` are
`SecretStr` so that no repr or log line can show them.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from pydantic import BaseModel, Field, SecretStr


class Envelope(BaseModel):
    """The wrapper around every Imbee reply."""

    time: float | None = None
    code: int
    message: str = ""
    body: Any = None


class ExternalUser(BaseModel):
    """Reply of `POST /third_parties/user/new`."""

    virtual_user: str = Field(alias="virtualUser", min_length=1)
    password: SecretStr = Field(alias="pass")
    apikey: SecretStr
    previously_registered: bool = False


class ChatContact(BaseModel):
    idsha: str
    isadmin: int = 0


class Chat(BaseModel):
    """Reply of `POST /chat/create`."""

    conversation_id: str = Field(alias="conversationId", min_length=1)
    contacts: list[ChatContact] = Field(default_factory=list)
    previously_created: bool = False


class AccessToken(BaseModel):
    """Reply of `POST /token/new`: the link the customer opens to chat."""

    url: str = Field(min_length=1)
    user_idsha: str = ""
    date_limit: date
    max_retries: int
    previously_created: bool = False
