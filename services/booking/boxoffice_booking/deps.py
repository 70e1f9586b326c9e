"""Typed FastAPI dependencies."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from boxoffice_db.engine import get_sessionmaker
from boxoffice_settings import Settings, get_settings
from fastapi import Depends
from sqlalchemy.orm import Session


def get_session() -> Iterator[Session]:
    """A session per request; handlers that write commit before they answer.

    The commit is explicit so that a client never sees a success whose commit failed.
    """
    with get_sessionmaker()() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
