"""The store's schema as lab made it before features kept their own migration steps (issue 9).

Copied verbatim from ``lab/evidence/store.py`` at commit 6b17e94: stores made then have one
store-wide ``schema_version`` (1, 2 or 3), and ``SCHEMA_VERSIONS[n - 1]`` is what version n added.
Do not edit: the tests prove that such stores still open, unchanged.
"""

SCHEMA_VERSIONS: tuple[str, ...] = (
    """
    CREATE TABLE builds (
        product TEXT NOT NULL, version TEXT NOT NULL, digest TEXT NOT NULL,
        artifact TEXT NOT NULL, registered_at TEXT NOT NULL,
        PRIMARY KEY (product, version));
    CREATE TABLE campaigns (
        id TEXT PRIMARY KEY, product TEXT NOT NULL, version TEXT NOT NULL, digest TEXT NOT NULL,
        state TEXT NOT NULL, created_at TEXT NOT NULL, finished_at TEXT,
        sandboxes TEXT NOT NULL, suites TEXT NOT NULL, lab_path TEXT NOT NULL);
    CREATE TABLE cells (
        campaign_id TEXT NOT NULL REFERENCES campaigns(id), sandbox TEXT NOT NULL, suite TEXT NOT NULL,
        state TEXT NOT NULL, started_at TEXT, finished_at TEXT,
        PRIMARY KEY (campaign_id, sandbox, suite));
    CREATE TABLE results (
        campaign_id TEXT NOT NULL, sandbox TEXT NOT NULL, suite TEXT NOT NULL, check_id TEXT NOT NULL,
        status TEXT NOT NULL, message TEXT NOT NULL, evidence TEXT NOT NULL,
        duration_ms INTEGER NOT NULL, attempts INTEGER NOT NULL,
        PRIMARY KEY (campaign_id, sandbox, suite, check_id),
        FOREIGN KEY (campaign_id, sandbox, suite) REFERENCES cells(campaign_id, sandbox, suite));
    CREATE TABLE steps (
        campaign_id TEXT NOT NULL REFERENCES campaigns(id), sandbox TEXT NOT NULL, step TEXT NOT NULL,
        ok INTEGER NOT NULL, infrastructure_error INTEGER NOT NULL, detail TEXT NOT NULL,
        deployed_digest TEXT, started_at TEXT NOT NULL, finished_at TEXT NOT NULL,
        PRIMARY KEY (campaign_id, sandbox, step));
    CREATE TABLE promotions (
        product TEXT NOT NULL, version TEXT NOT NULL, digest TEXT NOT NULL, stage TEXT NOT NULL,
        campaign_id TEXT NOT NULL, verdict TEXT NOT NULL, promoted_at TEXT NOT NULL,
        PRIMARY KEY (product, version, stage));
    """,
    # 2: signed approvals, rejections and waivers; the hash-chained, append-only audit log.
    """
    CREATE TABLE signatures (
        id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL,
        product TEXT NOT NULL, version TEXT NOT NULL, digest TEXT NOT NULL, stage TEXT,
        sandbox TEXT, suite TEXT, check_id TEXT,
        principal TEXT NOT NULL, payload TEXT NOT NULL, signature TEXT NOT NULL, recorded_at TEXT NOT NULL);
    CREATE INDEX signatures_by_build ON signatures (product, version);
    CREATE TABLE audit (
        seq INTEGER PRIMARY KEY, time TEXT NOT NULL, kind TEXT NOT NULL, subject TEXT NOT NULL,
        payload TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL);
    CREATE TABLE audit_head (
        id INTEGER PRIMARY KEY CHECK (id = 1), seq INTEGER NOT NULL, hash TEXT NOT NULL);
    CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    CREATE TRIGGER signatures_no_update BEFORE UPDATE ON signatures
        BEGIN SELECT RAISE(ABORT, 'signed records are append-only'); END;
    CREATE TRIGGER signatures_no_delete BEFORE DELETE ON signatures
        BEGIN SELECT RAISE(ABORT, 'signed records are append-only'); END;
    """,
    # 3: staged rollouts to production: rollouts, their waves, each host's outcome (lab/rollout/records.py).
    """
    CREATE TABLE rollouts (
        id TEXT PRIMARY KEY, product TEXT NOT NULL, version TEXT NOT NULL, digest TEXT NOT NULL,
        stage TEXT NOT NULL, state TEXT NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL,
        finished_at TEXT, detail TEXT NOT NULL);
    CREATE INDEX rollouts_by_product ON rollouts (product, created_at);
    CREATE TABLE rollout_waves (
        rollout_id TEXT NOT NULL REFERENCES rollouts(id), wave INTEGER NOT NULL, name TEXT NOT NULL,
        state TEXT NOT NULL, max_failures INTEGER, max_failure_rate REAL, pause_seconds INTEGER NOT NULL,
        started_at TEXT, finished_at TEXT, resume_at TEXT, detail TEXT NOT NULL,
        PRIMARY KEY (rollout_id, wave));
    CREATE TABLE rollout_hosts (
        rollout_id TEXT NOT NULL, wave INTEGER NOT NULL, host TEXT NOT NULL, position INTEGER NOT NULL,
        state TEXT NOT NULL, previous TEXT, deployed_digest TEXT, health TEXT, detail TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (rollout_id, host),
        FOREIGN KEY (rollout_id, wave) REFERENCES rollout_waves(rollout_id, wave));
    """,
)
