"""Who is calling the Channels API, and what their workspace role lets them do.

User tokens are Supabase-style HS256 JWTs signed with WASSLA_JWT_SECRET; `sub` is the user id.
Only HS256 is accepted (no `none`, no algorithm picked by the token). `exp` is required.
Audience: Supabase puts `aud: "authenticated"` on signed-in users' tokens; a token with an
`aud` must carry "authenticated", a token without one is accepted (tokens we mint ourselves,
e.g. in the CLI or tests, need not pretend to be Supabase's).
"""

from __future__ import annotations

import logging
import time
from typing import Any
from uuid import UUID

import jwt

from shared import workspaces
from shared.errors import Forbidden, NotFound, Unauthenticated
from shared.models import Role
from shared.pg import Connection

logger = logging.getLogger("webhook_gateway.auth")

ALGORITHM = "HS256"
AUDIENCE = "authenticated"
_LEEWAY_SECONDS = 30  # clock skew between the issuer and us
_MAX_USER_ID = 200  # workspace_members.user_id's own limit


def bearer_token(authorization: str | None) -> str:
    """The token of an `Authorization: Bearer <token>` header, or Unauthenticated."""
    if not authorization:
        raise Unauthenticated("sign in: send Authorization: Bearer <token>", reason="missing")
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("the Authorization header must be 'Bearer <token>'")
    return token.strip()


# The console's session: the same kind of token, in an HttpOnly cookie (webhook_gateway/console).
SESSION_COOKIE = "wassla_console"
# Writes authenticated by the cookie must carry this header: a cross-site form or link cannot
# set one, and a cross-site script would need a CORS preflight we never grant.
CONSOLE_HEADER = "X-Wassla-Console"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def cookie_token(cookie: str, *, method: str, console_header: str | None) -> str:
    """The session cookie's token, for a safe method or a write that names the console."""
    if method.upper() not in _SAFE_METHODS and not console_header:
        raise Unauthenticated(f"a signed-in write must send the {CONSOLE_HEADER} header")
    if not cookie.strip():
        raise Unauthenticated("sign in: send Authorization: Bearer <token>", reason="missing")
    return cookie.strip()


def mint_user_token(user_id: str, secret: str, *, ttl_seconds: int, use: str | None = None) -> str:
    """A token of ours for `user_id` (the console's sign-in links and session cookie);
    `use` marks what it is for, where one kind must not pass for another."""
    now = int(time.time())
    claims: dict[str, Any] = {"sub": user_id, "iat": now, "exp": now + ttl_seconds}
    if use is not None:
        claims["use"] = use
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def token_use(token: str) -> str | None:
    """The `use` claim of a token verify_user_token has already accepted."""
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    use = claims.get("use")
    return use if isinstance(use, str) else None


def verify_user_token(token: str, secret: str) -> str:
    """The user id (`sub`) of a valid token; Unauthenticated for anything else."""
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            leeway=_LEEWAY_SECONDS,
            # aud is checked below: PyJWT either requires it or rejects it, we want "if present".
            options={"require": ["exp", "sub"], "verify_aud": False},
        )
    except jwt.ExpiredSignatureError:
        raise Unauthenticated("the token has expired; sign in again") from None
    except jwt.PyJWTError as exc:
        # The reason goes to the log only: callers learn nothing about what we check.
        logger.info("auth.token_rejected", extra={"reason": type(exc).__name__})
        raise Unauthenticated("invalid token") from None
    audience = claims.get("aud")
    if audience is not None:
        audiences = [audience] if isinstance(audience, str) else audience
        if not isinstance(audiences, list) or AUDIENCE not in audiences:
            logger.info("auth.token_rejected", extra={"reason": "audience"})
            raise Unauthenticated("invalid token")
    user_id = claims["sub"]
    if not isinstance(user_id, str) or not user_id.strip() or len(user_id) > _MAX_USER_ID:
        logger.info("auth.token_rejected", extra={"reason": "sub"})
        raise Unauthenticated("invalid token")
    return user_id


async def require_member(
    conn: Connection, workspace_id: UUID, user_id: str, *, manage_channels: bool = False
) -> Role:
    """The caller's role in the workspace.

    Non-members get NotFound, the same answer as for a workspace that does not exist, so
    the API does not reveal which workspace ids exist. Members whose role may not manage
    channels get Forbidden when `manage_channels` is asked for.
    """
    role = await workspaces.member_role(conn, workspace_id, user_id)
    if role is None:
        raise NotFound(f"workspace {workspace_id} not found")
    if manage_channels and not role.can_manage_channels:
        raise Forbidden(f"the {role.value} role cannot change channels; ask an owner or admin")
    return role
