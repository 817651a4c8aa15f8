-- A job queue for the worker (`flask --app notes worker`) and the digests the nightly
-- `flask --app notes digest` writes. Times are ISO 8601 text in UTC; params and result JSON.
CREATE TABLE job (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    params TEXT NOT NULL DEFAULT '{}',
    status TEXT NOT NULL DEFAULT 'queued'
        CHECK (status IN ('queued', 'running', 'done', 'failed')),
    result TEXT,
    ran_in TEXT,
    created TEXT NOT NULL,
    started TEXT,
    finished TEXT
);
CREATE INDEX job_status ON job (status, id);

CREATE TABLE digest (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created TEXT NOT NULL,
    notes INTEGER NOT NULL,
    ran_in TEXT NOT NULL
);
