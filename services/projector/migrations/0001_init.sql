-- ci-medic projector: the audit trail and the failures view.
-- Released: never edit this file; add 0002_*.sql instead (the checksum is enforced).

CREATE TABLE projector_tracking (
    consumer    text        NOT NULL,
    event_id    text        NOT NULL,
    stream_seq  bigint      NOT NULL,
    event_type  text        NOT NULL,
    occurred_at timestamptz NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);
CREATE INDEX projector_tracking_seq ON projector_tracking (consumer, stream_seq);

-- One row: the last link of the audit chain. Locking it serialises chain appends.
CREATE TABLE audit_chain_head (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    last_id   bigint  NOT NULL,
    last_hash text    NOT NULL
);
INSERT INTO audit_chain_head (last_id, last_hash) VALUES (0, repeat('0', 64));

-- Ids are dense (taken from the chain head under its lock, not from a sequence that
-- leaks numbers on rollback), so a gap always means a deleted row.
CREATE TABLE audit_log (
    id          bigint      PRIMARY KEY,
    event_id    text        NOT NULL UNIQUE,
    occurred_at timestamptz NOT NULL,
    actor       text        NOT NULL,
    action      text        NOT NULL,
    outcome     text,
    failure_id  text        NOT NULL,
    repository  text,
    details     jsonb       NOT NULL,
    prev_hash   text        NOT NULL,
    row_hash    text        NOT NULL
);
CREATE INDEX audit_log_failure ON audit_log (failure_id, occurred_at);
CREATE INDEX audit_log_occurred ON audit_log (occurred_at);
CREATE INDEX audit_log_repository ON audit_log (repository, id);
CREATE INDEX audit_log_action ON audit_log (action, id);

CREATE TABLE failures (
    failure_id             text        PRIMARY KEY,
    repository             text,
    run_id                 bigint,
    run_attempt            integer,
    workflow_name          text,
    branch                 text,
    head_sha               text,
    html_url               text,
    state                  text        NOT NULL,
    state_rank             smallint    NOT NULL,
    state_at               timestamptz NOT NULL,
    state_event_id         text        NOT NULL,
    category               text,
    risk                   smallint,
    confidence             double precision,
    method                 text,
    fingerprint            text,
    summary                text,
    proposed_action        text,
    gate_outcome           text,
    gate_reasons           jsonb,
    gate_risk              smallint,
    risk_threshold         smallint,
    approval_id            text,
    approval_outcome       text,
    approver               text,
    approval_expires_at    timestamptz,
    remediation_action     text,
    remediation_outcome    text,
    remediation_detail     text,
    verified_run_attempt   integer,
    first_seen_at          timestamptz NOT NULL,
    last_event_at          timestamptz NOT NULL,
    event_count            integer     NOT NULL DEFAULT 1,
    detected_at            timestamptz,
    analyzed_at            timestamptz,
    decided_at             timestamptz,
    approval_requested_at  timestamptz,
    approval_decided_at    timestamptz,
    remediation_started_at timestamptz,
    settled_at             timestamptz
);
CREATE INDEX failures_listing ON failures (first_seen_at DESC, failure_id DESC);
CREATE INDEX failures_state ON failures (state);
CREATE INDEX failures_repository ON failures (repository);
