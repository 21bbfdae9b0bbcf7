-- Global schema ids: one per distinct Parsing Canonical Form, never reused (AUTOINCREMENT).
CREATE TABLE schemas (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    canonical TEXT NOT NULL UNIQUE,
    schema_text TEXT NOT NULL
);

CREATE TABLE subject_versions (
    subject TEXT NOT NULL,
    version INTEGER NOT NULL,
    schema_id INTEGER NOT NULL REFERENCES schemas (id),
    deleted INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (subject, version)
);
CREATE INDEX subject_versions_schema ON subject_versions (schema_id);

-- Compatibility per subject; the subject '' holds the global level.
CREATE TABLE compatibility (
    subject TEXT PRIMARY KEY,
    level TEXT NOT NULL
);

CREATE TABLE topics (
    topic TEXT PRIMARY KEY,
    metadata TEXT NOT NULL
);

-- Every topic metadata change, in order, for the watch stream across replicas.
CREATE TABLE topic_changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    metadata TEXT
);
