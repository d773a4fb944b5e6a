"""The database schema (SQLAlchemy Core), one definition for SQLite and PostgreSQL.

Times are stored as integer microseconds since the epoch (`*_us`): compact, index-friendly and identical on both
engines. Lists that are only ever read whole are JSON text; everything a search filters on has its own indexed
column or a row in `message_terms`."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

PK = BigInteger().with_variant(Integer(), "sqlite")

accounts = Table(
    "accounts",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", Text, nullable=False),
    Column("created_us", BigInteger, nullable=False),
    Column("settings_json", Text, nullable=False, default="{}"),
)

users = Table(
    "users",
    metadata,
    Column("id", PK, primary_key=True, autoincrement=True),
    Column("email", String(320), nullable=False, unique=True),
    Column("key_hash", String(64), nullable=False),
    Column("created_us", BigInteger, nullable=False),
    Column("password_hash", Text),  # scrypt, salted (store/passwords.py); NULL: no console password
)

user_accounts = Table(
    "user_accounts",
    metadata,
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("account_id", ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True),
    Column("can_write", Boolean, nullable=False, default=True),
)

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("account_id", ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("can_write", Boolean, nullable=False),
    Column("name", Text, nullable=False, default=""),
    Column("created_us", BigInteger, nullable=False),
    Column("revoked", Boolean, nullable=False, default=False),
)

domains = Table(
    "domains",
    metadata,
    Column("id", PK, primary_key=True, autoincrement=True),
    Column("account_id", ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("domain", String(255), nullable=False, unique=True),
    Column("mode", String(16), nullable=False, default="DIRECT"),
    Column("next_hop", Text, nullable=False, default=""),
    Column("settings_json", Text, nullable=False, default="{}"),
    Column("created_us", BigInteger, nullable=False),
    Column("updated_us", BigInteger, nullable=False),
    # ACTIVE (mail is accepted) or PENDING (claimed through the API, control not yet proven by DNS TXT).
    Column("status", String(16), nullable=False, default="ACTIVE", server_default="ACTIVE"),
    Column("verify_token", String(64)),  # set for domains that prove control with a TXT record
    Column("checked_us", BigInteger),  # the last TXT check
)

# Who claimed, verified, changed or released which domain: kept when the domain or its account is gone.
domain_audit = Table(
    "domain_audit",
    metadata,
    Column("id", PK, primary_key=True, autoincrement=True),
    Column("at_us", BigInteger, nullable=False),
    Column("account_id", String(32), nullable=False),
    Column("domain", String(255), nullable=False),
    Column("event", String(32), nullable=False),
    Column("actor", Text, nullable=False, default=""),
    Column("detail", Text, nullable=False, default=""),
)
Index("ix_domain_audit_domain", domain_audit.c.domain, domain_audit.c.at_us)
Index("ix_domain_audit_account", domain_audit.c.account_id, domain_audit.c.at_us)

messages = Table(
    "messages",
    metadata,
    Column("pk", PK, primary_key=True, autoincrement=True),
    Column("account_id", ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("id", String(64), nullable=False, unique=True),
    Column("postfix_id", String(16), nullable=False, unique=True),
    Column("alert_id", String(48), nullable=False),
    Column("scanned_us", BigInteger, nullable=False),
    Column("sent_us", BigInteger),
    Column("raw_sha256", String(64), nullable=False),
    Column("raw_size", BigInteger, nullable=False),
    Column("delivery_mode", String(32), nullable=False),
    Column("final_disposition", String(16), nullable=False),
    Column("is_detection", Boolean, nullable=False),
    Column("is_quarantined", Boolean, nullable=False, default=False),
    Column("is_phish_submission", Boolean, nullable=False, default=False),
    Column("delivery_status", String(16)),
    Column("from_addr", Text),
    Column("from_name", Text),
    Column("envelope_from", Text),
    Column("replyto", Text),
    Column("subject", Text),
    Column("subject_lower", Text),
    Column("message_id", Text),
    Column("smtp_helo_server_ip", String(64)),
    Column("smtp_previous_hop_ip", String(64)),
    Column("x_originating_ip", String(64)),
    Column("postfix_id_outbound", String(16)),
    Column("edf_hash", String(64)),
    Column("htmltext_structure_hash", String(64)),
    Column("data_json", Text, nullable=False),
    Column("verdict_json", Text, nullable=False),
    Column("search_text", Text, nullable=False),
    Column("operations", Text, nullable=False, default=""),
)
Index("ix_messages_account_time", messages.c.account_id, messages.c.scanned_us, messages.c.pk)
Index("ix_messages_account_detection_time", messages.c.account_id, messages.c.is_detection, messages.c.scanned_us)
Index("ix_messages_account_disposition", messages.c.account_id, messages.c.final_disposition, messages.c.scanned_us)
Index("ix_messages_account_status", messages.c.account_id, messages.c.delivery_status, messages.c.scanned_us)
Index("ix_messages_account_msgid", messages.c.account_id, messages.c.message_id)
Index("ix_messages_account_alert", messages.c.account_id, messages.c.alert_id)
Index("ix_messages_account_subject", messages.c.account_id, messages.c.subject_lower)
Index("ix_messages_account_helo", messages.c.account_id, messages.c.smtp_helo_server_ip)
Index("ix_messages_account_raw", messages.c.account_id, messages.c.raw_sha256)

# One row per (message, kind, value) for the filters that match one of many values: sender/recipient address or
# domain (every parent domain is listed too, so `example.com` finds `mail.example.com`), and any domain.
message_terms = Table(
    "message_terms",
    metadata,
    Column("message_pk", ForeignKey("messages.pk", ondelete="CASCADE"), nullable=False),
    Column("account_id", String(32), nullable=False),
    Column("kind", String(8), nullable=False),
    Column("value", Text, nullable=False),
    Column("scanned_us", BigInteger, nullable=False),
)
Index(
    "ix_terms_lookup",
    message_terms.c.account_id,
    message_terms.c.kind,
    message_terms.c.value,
    message_terms.c.scanned_us,
    message_terms.c.message_pk,
)
Index("ix_terms_message", message_terms.c.message_pk)

recipients = Table(
    "recipients",
    metadata,
    Column("id", PK, primary_key=True, autoincrement=True),
    Column("message_pk", ForeignKey("messages.pk", ondelete="CASCADE"), nullable=False),
    Column("address", Text, nullable=False),
    Column("status", String(16), nullable=False, default="queued"),
    Column("folder", String(32)),
    Column("detail", Text),
    Column("updated_us", BigInteger, nullable=False),
)
Index("ix_recipients_message", recipients.c.message_pk)

attachments = Table(
    "attachments",
    metadata,
    Column("id", PK, primary_key=True, autoincrement=True),
    Column("message_pk", ForeignKey("messages.pk", ondelete="CASCADE"), nullable=False),
    Column("name", Text, nullable=False),
    Column("content_type", Text, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("md5", String(32), nullable=False),
    Column("sha1", String(40), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("detection", String(16)),
    Column("encrypted", Boolean, nullable=False, default=False),
)
Index("ix_attachments_message", attachments.c.message_pk)
Index("ix_attachments_sha256", attachments.c.sha256)

links = Table(
    "links",
    metadata,
    Column("id", PK, primary_key=True, autoincrement=True),
    Column("message_pk", ForeignKey("messages.pk", ondelete="CASCADE"), nullable=False),
    Column("href", Text, nullable=False),
    Column("text", Text, nullable=False, default=""),
    Column("domain", Text, nullable=False, default=""),
)
Index("ix_links_message", links.c.message_pk)

findings = Table(
    "findings",
    metadata,
    Column("id", PK, primary_key=True, autoincrement=True),
    Column("message_pk", ForeignKey("messages.pk", ondelete="CASCADE"), nullable=False),
    Column("name", Text, nullable=False),
    Column("detection", String(16), nullable=False),
    Column("score", Float, nullable=False),
    Column("reason", Text, nullable=False),
    Column("data_json", Text, nullable=False),
)
Index("ix_findings_message", findings.c.message_pk)

trace_lines = Table(
    "trace_lines",
    metadata,
    Column("id", PK, primary_key=True, autoincrement=True),
    Column("message_pk", ForeignKey("messages.pk", ondelete="CASCADE"), nullable=False),
    Column("direction", String(8), nullable=False),
    Column("logged_us", BigInteger, nullable=False),
    Column("message", Text, nullable=False),
)
Index("ix_trace_message", trace_lines.c.message_pk, trace_lines.c.direction, trace_lines.c.id)

action_log = Table(
    "action_log",
    metadata,
    Column("id", PK, primary_key=True, autoincrement=True),
    Column("message_pk", ForeignKey("messages.pk", ondelete="CASCADE"), nullable=False),
    Column("operation", String(32), nullable=False),
    Column("completed_us", BigInteger, nullable=False),
    Column("status", String(32), nullable=False),
    Column("folder", Text),
    Column("requested_by", Text),
)
Index("ix_action_log_message", action_log.c.message_pk, action_log.c.id)

submissions = Table(
    "submissions",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("account_id", ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("message_pk", ForeignKey("messages.pk", ondelete="SET NULL")),
    Column("requested_us", BigInteger, nullable=False),
    Column("data_json", Text, nullable=False),
    # migration 1101: what `GET /submissions` filters and orders on
    Column("kind", String(8)),  # TEAM (an analyst's reclassification) or USER (an end user's report)
    Column("status", String(16)),
    Column("customer_status", String(16)),
    Column("original_disposition", String(16)),
    Column("requested_disposition", String(16)),
    Column("outcome_disposition", String(16)),
    Column("outcome", Text),
    Column("requested_by", Text),
    Column("subject", Text),
    Column("from_addr", Text),
    Column("original_postfix_id", String(16)),
    Column("original_edf_hash", String(64)),
    Column("escalated_submission_id", String(64)),  # the other side: USER -> its TEAM escalation, TEAM -> the USER
    Column("escalated_by", Text),
    Column("escalated_at_us", BigInteger),
    Column("escalated_as", String(16)),
    Column("search_text", Text),
)
Index("ix_submissions_account_time", submissions.c.account_id, submissions.c.requested_us)
Index("ix_submissions_account_kind", submissions.c.account_id, submissions.c.kind, submissions.c.requested_us)
Index("ix_submissions_message", submissions.c.message_pk)

search_jobs = Table(
    "search_jobs",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("account_id", ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("params_json", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("result_json", Text),
    Column("error", Text),
    Column("created_us", BigInteger, nullable=False),
    Column("updated_us", BigInteger, nullable=False),
)

policies = Table(
    "policies",
    metadata,
    Column("id", PK, primary_key=True, autoincrement=True),
    Column("account_id", ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("kind", String(40), nullable=False),
    Column("data_json", Text, nullable=False),
    Column("created_us", BigInteger, nullable=False),
    Column("updated_us", BigInteger, nullable=False),
)
Index("ix_policies_account_kind", policies.c.account_id, policies.c.kind)

# Numbers `policies` and `domains` rows from one sequence (store/settings_ids.py); AUTOINCREMENT: never reused.
settings_ids = Table(
    "settings_ids",
    metadata,
    Column("id", PK, primary_key=True, autoincrement=True),
    sqlite_autoincrement=True,
)

queue = Table(
    "queue",
    metadata,
    Column("id", PK, primary_key=True, autoincrement=True),
    Column("postfix_id", String(16), nullable=False, unique=True),
    Column("account_id", ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("raw_sha256", String(64), nullable=False),
    Column("envelope_json", Text, nullable=False),
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_us", BigInteger, nullable=False),
    Column("claimed_by", Text),
    Column("claimed_us", BigInteger),
    Column("created_us", BigInteger, nullable=False),
    Column("updated_us", BigInteger, nullable=False),
    Column("data_json", Text, nullable=False, default="{}"),
    Column("raw", LargeBinary),  # the accepted bytes until the worker has written the blob (migration 0008)
)
Index("ix_queue_state_next", queue.c.state, queue.c.next_attempt_us)

preview_cache = Table(
    "preview_cache",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("png", LargeBinary, nullable=False),
    Column("data_json", Text, nullable=False, default="{}"),
    Column("created_us", BigInteger, nullable=False),
)

mailbox_integrations = Table(
    "mailbox_integrations",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("account_id", ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("domain", Text, nullable=False),  # the recipient domain whose mailboxes it reaches
    Column("kind", String(16), nullable=False),  # imap, graph, gmail
    Column("url", Text, nullable=False),
    Column("options_json", Text, nullable=False, default="{}"),
    Column("secret", LargeBinary, nullable=False),  # encrypted with the data dir's key (mailbox/secrets.py)
    Column("created_us", BigInteger, nullable=False),
)
Index("ix_mailbox_integrations_account_domain", mailbox_integrations.c.account_id, mailbox_integrations.c.domain)

bulk_jobs = Table(
    "bulk_jobs",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("account_id", ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("action", String(16), nullable=False),
    Column("params_json", Text, nullable=False),  # destination, expected_disposition, search_params
    Column("comment", Text),
    Column("requested_by", Text),
    Column("status", String(16), nullable=False),
    Column("status_message", Text),
    Column("cancel_requested", Boolean, nullable=False, default=False),
    Column("claimed_by", Text),
    Column("claimed_us", BigInteger),
    Column("created_us", BigInteger, nullable=False),
    Column("started_us", BigInteger),
    Column("completed_us", BigInteger),
    Column("updated_us", BigInteger, nullable=False),
)
Index("ix_bulk_jobs_account", bulk_jobs.c.account_id, bulk_jobs.c.created_us)
Index("ix_bulk_jobs_status", bulk_jobs.c.status)

bulk_job_messages = Table(
    "bulk_job_messages",
    metadata,
    Column("id", PK, primary_key=True, autoincrement=True),
    Column("job_id", ForeignKey("bulk_jobs.id", ondelete="CASCADE"), nullable=False),
    Column("message_pk", ForeignKey("messages.pk", ondelete="CASCADE"), nullable=False),
    Column("status", String(16), nullable=False),  # PENDING, COMPLETED, FAILED, SKIPPED, CANCELLED
    Column("outcome_json", Text),
    Column("updated_us", BigInteger, nullable=False),
)
Index("ux_bulk_job_messages", bulk_job_messages.c.job_id, bulk_job_messages.c.message_pk, unique=True)
Index("ix_bulk_job_messages_status", bulk_job_messages.c.job_id, bulk_job_messages.c.status, bulk_job_messages.c.id)
sender_history = Table(
    "sender_history",
    metadata,
    Column("account_id", ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True),
    Column("kind", String(8), primary_key=True),  # "domain" (registered domain) or "address"
    Column("value", String(320), primary_key=True),
    Column("inbound", Integer, nullable=False, default=0),
    Column("days", Integer, nullable=False, default=0),
    Column("last_day", Integer, nullable=False, default=0),  # days since the epoch of the last inbound message
    Column("outbound", Integer, nullable=False, default=0),
    Column("flagged", Integer, nullable=False, default=0),
    Column("first_us", BigInteger, nullable=False),
    Column("last_us", BigInteger, nullable=False),
)

# Learning from reclassifications (mailsec.learn): a MinHash sketch and its LSH bands per stored message (blast
# radius), the campaigns and senders analysts reclassified, and the account's content model versions.
Index("ix_messages_account_edf", messages.c.account_id, messages.c.edf_hash)
learn_sketches = Table(
    "learn_sketches",
    metadata,
    Column("message_pk", ForeignKey("messages.pk", ondelete="CASCADE"), primary_key=True),
    Column("account_id", ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("scanned_us", BigInteger, nullable=False),
    Column("signature", LargeBinary, nullable=False),
)
learn_bands = Table(
    "learn_bands",
    metadata,
    Column("account_id", ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True),
    Column("band", BigInteger, primary_key=True),
    Column("message_pk", ForeignKey("messages.pk", ondelete="CASCADE"), primary_key=True),
)
Index("ix_learn_bands_message", learn_bands.c.message_pk)
learn_campaigns = Table(
    "learn_campaigns",
    metadata,
    Column("id", PK, primary_key=True, autoincrement=True),
    Column("account_id", ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("submission_id", String(64), nullable=False),
    Column("message_pk", ForeignKey("messages.pk", ondelete="SET NULL")),
    Column("requested", String(16), nullable=False),
    Column("original", String(16)),
    Column("edf_hash", String(64), nullable=False),
    Column("structure_hash", String(64), nullable=False),
    Column("signature", LargeBinary, nullable=False),
    Column("created_us", BigInteger, nullable=False),
)
Index("ix_learn_campaigns_edf", learn_campaigns.c.account_id, learn_campaigns.c.edf_hash)
Index("ix_learn_campaigns_structure", learn_campaigns.c.account_id, learn_campaigns.c.structure_hash)
Index("ix_learn_campaigns_message", learn_campaigns.c.message_pk)
learn_campaign_bands = Table(
    "learn_campaign_bands",
    metadata,
    Column("account_id", ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True),
    Column("band", BigInteger, primary_key=True),
    Column("campaign_id", ForeignKey("learn_campaigns.id", ondelete="CASCADE"), primary_key=True),
)
Index("ix_learn_campaign_bands_campaign", learn_campaign_bands.c.campaign_id)
learn_senders = Table(
    "learn_senders",
    metadata,
    Column("account_id", ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True),
    Column("kind", String(8), primary_key=True),  # "address", or "domain" (registered domain, when authenticated)
    Column("value", String(320), primary_key=True),
    Column("requested", String(16), nullable=False),
    Column("original", String(16)),
    Column("submission_id", String(64), nullable=False),
    Column("authenticated", Boolean, nullable=False),  # whether the reclassified message was, for its From domain
    Column("created_us", BigInteger, nullable=False),
)
learn_models = Table(
    "learn_models",
    metadata,
    Column("account_id", ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("parent", Integer, nullable=False),  # 0: the shipped model
    Column("state", String(16), nullable=False),  # active, superseded, rolled_back, refused
    Column("submission_id", String(64)),
    Column("label", String(16), nullable=False),
    Column("reason", Text, nullable=False),
    Column("quality_json", Text, nullable=False),
    Column("delta", LargeBinary),  # the whole change from the shipped model (npz); none when refused
    Column("created_us", BigInteger, nullable=False),
)

# Web console sign-ins, kept server-side: the cookie carries a random id, the table only its SHA-256. A session
# names its credential (an API token's id or a user's e-mail), never a grant: every request derives the grant anew,
# so revoking the token or removing the user ends the session at once.
console_sessions = Table(
    "console_sessions",
    metadata,
    Column("id_hash", String(64), primary_key=True),
    Column("kind", String(8), nullable=False),  # "token" or "user"
    Column("subject", String(320), nullable=False),  # api_tokens.id or users.email
    Column("created_us", BigInteger, nullable=False),
    Column("last_seen_us", BigInteger, nullable=False),
)
Index("ix_console_sessions_last_seen", console_sessions.c.last_seen_us)
