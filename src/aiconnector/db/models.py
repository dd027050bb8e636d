"""SQLAlchemy models for every table. Migrations in ``migrations/versions`` must match these
(a test compares them); docs/architecture.md lists what is stored hashed, encrypted or plain."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    true,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from aiconnector.security import media_token

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


Timestamp = DateTime(timezone=True)


# --- identity and access -------------------------------------------------------------------


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(60), unique=True)
    email: Mapped[str] = mapped_column(String(200), default="")
    display_name: Mapped[str] = mapped_column(String(200), default="")
    role: Mapped[str] = mapped_column(String(20))
    # Argon2id; NULL means the user cannot sign in with a password.
    password_hash: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)


class WordPressIdentity(Base):
    """A person's own WordPress Application Password ("AI Connector"), created by the service
    account on their first sign-in; their tool calls run with it so WordPress sees them.

    The password is AES-GCM encrypted with the credentials key (never stored in this database),
    bound to the user id so a ciphertext copied to another row does not decrypt."""

    __tablename__ = "wordpress_identities"
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    site_url: Mapped[str] = mapped_column(String(500))
    wp_login: Mapped[str] = mapped_column(String(60))
    app_password_uuid: Mapped[str] = mapped_column(String(40))
    app_password_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)


class Connection(Base):
    """One authorized agent. Every credential (token family, application password) hangs off one."""

    __tablename__ = "connections"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    client_id: Mapped[str | None] = mapped_column(String(300), nullable=True)
    agent_name: Mapped[str] = mapped_column(String(200))
    method: Mapped[str] = mapped_column(String(30))  # oauth | device | application_password
    scopes: Mapped[str] = mapped_column(String(500))  # space-separated, canonical order
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    last_active_at: Mapped[datetime | None] = mapped_column(Timestamp, nullable=True)
    last_ip: Mapped[str | None] = mapped_column(String(64), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(Timestamp, nullable=True, index=True)
    revoked_by: Mapped[int | None] = mapped_column(Integer, nullable=True)
    revoke_reason: Mapped[str | None] = mapped_column(String(300), nullable=True)

    __table_args__ = (Index("ix_connections_created", "created_at", "id"),)


class AppPassword(Base):
    __tablename__ = "app_passwords"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    connection_id: Mapped[str] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    # SHA-256 of the whole password (hex). Passwords are 160+ random bits, so a fast hash is right.
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # First characters after the prefix, shown in listings so a leaked password can be matched.
    hint: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(Timestamp, nullable=True)
    last_ip: Mapped[str | None] = mapped_column(String(64), nullable=True)


class AuditEvent(Base):
    __tablename__ = "audit_events"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow, index=True)
    event: Mapped[str] = mapped_column(String(60), index=True)
    outcome: Mapped[str] = mapped_column(String(20), default="success")
    user_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    connection_id: Mapped[str | None] = mapped_column(String(40), nullable=True, index=True)
    ip: Mapped[str | None] = mapped_column(String(64), nullable=True)
    user_agent: Mapped[str | None] = mapped_column(String(300), nullable=True)
    detail: Mapped[dict] = mapped_column(JSON, default=dict)


class RateCounter(Base):
    """Fixed-window failure counters shared by every instance on the same database."""

    __tablename__ = "rate_counters"
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    window_start: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    count: Mapped[int] = mapped_column(Integer, default=0)


# --- OAuth 2.1 authorization server ------------------------------------------------------


class OAuthClient(Base):
    """A client application: registered dynamically (RFC 7591), described by a Client ID
    Metadata Document (client_id is an HTTPS URL), or pre-registered by the site owner."""

    __tablename__ = "oauth_clients"
    client_id: Mapped[str] = mapped_column(String(500), primary_key=True)
    # dynamic | metadata_document | pre_registered | device | user_registered (core/clients.py)
    kind: Mapped[str] = mapped_column(String(30))
    name: Mapped[str] = mapped_column(String(200))
    redirect_uris: Mapped[list] = mapped_column(JSON, default=list)
    grant_types: Mapped[list] = mapped_column(JSON, default=list)
    token_endpoint_auth_method: Mapped[str] = mapped_column(String(40), default="none")
    # SHA-256 of the client secret (confidential clients only).
    secret_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    client_uri: Mapped[str | None] = mapped_column(String(500), nullable=True)
    logo_uri: Mapped[str | None] = mapped_column(String(500), nullable=True)
    software_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    # The registration request or fetched metadata document as received (no secrets in it).
    document: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(Timestamp, nullable=True)
    # Metadata documents: when the cached copy must be fetched again.
    refresh_after: Mapped[datetime | None] = mapped_column(Timestamp, nullable=True)
    # Dynamic and user-registered clients that never connect (or lose their last connection)
    # are removed after this.
    expires_at: Mapped[datetime | None] = mapped_column(Timestamp, nullable=True, index=True)
    # Who registered it on the Add Connection page (NULL: itself, a metadata document, the CLI).
    registered_by: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )


class SpentNonce(Base):
    """Single-use forms (the consent page): the SHA-256 of each nonce already used, kept until
    the form it came from would have expired anyway."""

    __tablename__ = "spent_nonces"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(Timestamp, index=True)


class AuthorizationCode(Base):
    __tablename__ = "authorization_codes"
    code_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(500))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    redirect_uri: Mapped[str] = mapped_column(String(2000))
    # OAuth 2.1 §4.1.3: the token request must repeat redirect_uri only when the authorization
    # request carried one (a client with a single registered URI may leave it out).
    redirect_uri_required: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    code_challenge: Mapped[str] = mapped_column(String(128))
    scopes: Mapped[str] = mapped_column(String(500))
    resource: Mapped[str] = mapped_column(String(500))
    agent_name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(Timestamp, index=True)
    used_at: Mapped[datetime | None] = mapped_column(Timestamp, nullable=True)
    # Set when the code is redeemed, so a replay can revoke what the code produced.
    connection_id: Mapped[str | None] = mapped_column(String(40), nullable=True)


class OAuthToken(Base):
    """Access and refresh tokens, stored as SHA-256 hashes. A connection's refresh tokens form
    a rotation chain: each use marks the token rotated and issues its successor."""

    __tablename__ = "oauth_tokens"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(10))  # access | refresh
    connection_id: Mapped[str] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"), index=True)
    client_id: Mapped[str] = mapped_column(String(500))
    scopes: Mapped[str] = mapped_column(String(500))
    resource: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(Timestamp, nullable=True, index=True)
    revoked_at: Mapped[datetime | None] = mapped_column(Timestamp, nullable=True)
    # Refresh tokens: when this one was exchanged, and for which successor.
    rotated_at: Mapped[datetime | None] = mapped_column(Timestamp, nullable=True)
    replaced_by_id: Mapped[int | None] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), nullable=True
    )


class DeviceCode(Base):
    """RFC 8628 device authorization: the agent polls with the device code (stored hashed)
    while a person approves the short user code in a browser."""

    __tablename__ = "device_codes"
    device_code_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    # Normalized (upper case, no dash) 8 characters from BCDFGHJKLMNPQRSTVWXZ; unique while pending.
    user_code: Mapped[str] = mapped_column(String(16), index=True)
    client_id: Mapped[str] = mapped_column(String(500))
    scopes: Mapped[str] = mapped_column(String(500))
    resource: Mapped[str] = mapped_column(String(500))
    status: Mapped[str] = mapped_column(
        String(20), default="pending"
    )  # pending|approved|denied|used|expired|locked
    interval: Mapped[int] = mapped_column(Integer, default=5)
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(Timestamp, index=True)
    last_poll_at: Mapped[datetime | None] = mapped_column(Timestamp, nullable=True)
    # Who approved or denied, with what scope (possibly narrowed), and the agent name to use.
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=True)
    granted_scopes: Mapped[str | None] = mapped_column(String(500), nullable=True)
    agent_name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    decided_at: Mapped[datetime | None] = mapped_column(Timestamp, nullable=True)
    connection_id: Mapped[str | None] = mapped_column(String(40), nullable=True)


class WebSession(Base):
    """A signed-in browser (sign-in, consent, device verification and admin pages)."""

    __tablename__ = "web_sessions"
    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)  # SHA-256 of the cookie value
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    csrf_secret: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(Timestamp, index=True)
    ip: Mapped[str | None] = mapped_column(String(64), nullable=True)
    user_agent: Mapped[str | None] = mapped_column(String(300), nullable=True)


# --- site content (the built-in site) -------------------------------------------------------


class Post(Base):
    __tablename__ = "posts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    type: Mapped[str] = mapped_column(String(20), default="post")  # post | page
    title: Mapped[str] = mapped_column(String(500), default="")
    content: Mapped[str] = mapped_column(Text, default="")
    excerpt: Mapped[str] = mapped_column(Text, default="")
    slug: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20), default="draft")
    author_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("posts.id"), nullable=True)
    featured_media_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    menu_order: Mapped[int] = mapped_column(Integer, default=0)
    comment_status: Mapped[str] = mapped_column(String(20), default="open")
    # Status before trashing, restored on untrash.
    trashed_from: Mapped[str | None] = mapped_column(String(20), nullable=True)
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    date: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)  # publication date
    modified_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)

    __table_args__ = (
        Index("ix_posts_type_status_date", "type", "status", "date", "id"),
        UniqueConstraint("type", "slug", name="uq_posts_type_slug"),
    )


class Term(Base):
    __tablename__ = "terms"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    taxonomy: Mapped[str] = mapped_column(String(20))  # category | post_tag
    name: Mapped[str] = mapped_column(String(200))
    slug: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("terms.id"), nullable=True)

    __table_args__ = (UniqueConstraint("taxonomy", "slug", name="uq_terms_taxonomy_slug"),)


class PostTerm(Base):
    __tablename__ = "post_terms"
    post_id: Mapped[int] = mapped_column(ForeignKey("posts.id", ondelete="CASCADE"), primary_key=True)
    term_id: Mapped[int] = mapped_column(
        ForeignKey("terms.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class Comment(Base):
    __tablename__ = "comments"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    post_id: Mapped[int] = mapped_column(ForeignKey("posts.id", ondelete="CASCADE"), index=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("comments.id"), nullable=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    author_name: Mapped[str] = mapped_column(String(200), default="")
    author_email: Mapped[str] = mapped_column(String(200), default="")
    content: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20), default="hold")  # approved | hold | spam | trash
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)


class Media(Base):
    __tablename__ = "media"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    title: Mapped[str] = mapped_column(String(500), default="")
    filename: Mapped[str] = mapped_column(String(300))
    mime_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(Integer)
    alt_text: Mapped[str] = mapped_column(String(500), default="")
    caption: Mapped[str] = mapped_column(Text, default="")
    author_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    post_id: Mapped[int | None] = mapped_column(ForeignKey("posts.id", ondelete="SET NULL"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    # The public URL is /media/<public_token>/<filename>: ids are sequential, and a file must
    # not be found by counting (sites/builtin.py, "media visibility").
    public_token: Mapped[str] = mapped_column(String(32), unique=True, default=media_token)


class MediaBlob(Base):
    """Bytes kept apart from metadata so listing media never loads file contents."""

    __tablename__ = "media_blobs"
    media_id: Mapped[int] = mapped_column(ForeignKey("media.id", ondelete="CASCADE"), primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class SiteOption(Base):
    __tablename__ = "site_options"
    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
