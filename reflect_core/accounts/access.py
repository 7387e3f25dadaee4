"""Who may see and change what (DESIGN.md, Storage: nothing is shared between users).

Single-user mode runs as ``LOCAL_USER``, an admin, so every check passes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from reflect_core.base.errors import AccessError, InvalidInput

__all__ = ["AccessError", "LOCAL_USER", "User", "check_owner", "validate_username"]

ROLES = ("user", "admin")

# ASCII only: the name becomes a folder under uploads/ (a leading dot is refused separately).
_USERNAME = re.compile(r"[A-Za-z0-9._-]+")


@dataclass(frozen=True)
class User:
    name: str
    role: str = "user"

    def __post_init__(self):
        # A mistyped role ("Admin") would otherwise silently mean "not an admin".
        if self.role not in ROLES:
            raise InvalidInput(f"role {self.role!r} for user {self.name!r} is not one of {', '.join(ROLES)}")

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


LOCAL_USER = User("local", "admin")


def check_owner(user: User, owner: str, what: str) -> None:
    """Raise AccessError unless ``user`` owns the thing or is an admin.

    ``what`` names the thing by something the caller may see (an id), never by
    its owner's content; the owner's name is not echoed either.
    """
    if user.name != owner and not user.is_admin:
        raise AccessError(f"{what} is not yours (signed in as {user.name!r})")


def validate_username(name) -> str:
    """The name unchanged if it is 1-40 of A-Z a-z 0-9 . _ - not starting with '.'; else InvalidInput.

    Case is kept: the login lowercases names, and the login file's names must be unique ignoring
    case (``auth_config.check_login_names``), so one person never has two folders.
    """
    if not isinstance(name, str):
        raise InvalidInput(f"user name must be text, not {type(name).__name__}")
    if not 1 <= len(name) <= 40:
        raise InvalidInput(f"user name must be 1-40 characters long (got {len(name)})")
    if name.startswith("."):
        raise InvalidInput(f"user name {name!r} must not start with '.'")
    if not _USERNAME.fullmatch(name):
        kind = " looks like an e-mail address: a user name" if "@" in name else ""
        raise InvalidInput(f"user name {name!r}{kind} may contain only letters A-Z a-z, digits, '.', '_' and '-' "
                           "(it names the user's folder)")
    return name
