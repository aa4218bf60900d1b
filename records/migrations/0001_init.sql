-- 0001: initial schema. Months are stored as YYYYMM integers, money as fen,
-- dates as 'YYYY-MM-DD' text and timestamps as RFC 3339 UTC text.

CREATE TABLE import_batches (
    id                  INTEGER PRIMARY KEY,
    started_at          TEXT    NOT NULL,
    finished_at         TEXT,
    persons_file        TEXT    NOT NULL DEFAULT '',
    contributions_file  TEXT    NOT NULL DEFAULT '',
    account_file        TEXT    NOT NULL DEFAULT '',
    persons_rows        INTEGER NOT NULL DEFAULT 0,
    contributions_rows  INTEGER NOT NULL DEFAULT 0,
    movements_rows      INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE persons (
    id_number  TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    phone      TEXT NOT NULL,
    region     TEXT NOT NULL,
    category   TEXT NOT NULL CHECK (category IN ('employee', 'flexible', 'resident')),
    employer   TEXT NOT NULL DEFAULT ''
) WITHOUT ROWID;

-- The key is ordered (id_number, insurance, month) rather than
-- (id_number, month, insurance): every read is "one person, one insurance,
-- a range of months", which this order answers with one contiguous range scan.
CREATE TABLE contributions (
    id_number  TEXT    NOT NULL REFERENCES persons (id_number),
    insurance  TEXT    NOT NULL CHECK (insurance IN ('medical', 'pension', 'unemployment', 'injury', 'maternity')),
    month      INTEGER NOT NULL CHECK (month BETWEEN 190001 AND 299912),
    base       INTEGER NOT NULL CHECK (base >= 0),
    personal   INTEGER NOT NULL CHECK (personal >= 0),
    employer   INTEGER NOT NULL CHECK (employer >= 0),
    status     TEXT    NOT NULL CHECK (status IN ('paid', 'unpaid')),
    PRIMARY KEY (id_number, insurance, month)
) WITHOUT ROWID;

-- Account movements have no identifier of their own in the agency's export.
-- The natural key adds seq, the occurrence index of an identical
-- (id_number, date, amount, description) row within one import file, so two
-- genuine identical purchases on one day stay two rows while re-importing the
-- same file changes nothing. A rowid table: rowid keeps booking order within a day.
CREATE TABLE account_movements (
    id_number    TEXT    NOT NULL REFERENCES persons (id_number),
    date         TEXT    NOT NULL,
    amount       INTEGER NOT NULL,
    description  TEXT    NOT NULL,
    seq          INTEGER NOT NULL DEFAULT 0,
    UNIQUE (id_number, date, amount, description, seq)
);
CREATE INDEX account_movements_by_date ON account_movements (id_number, date);

-- One row per person and insurance, recomputed at import for the persons an
-- import touched, so reminder scans need not aggregate the contributions.
CREATE TABLE person_summary (
    id_number        TEXT    NOT NULL REFERENCES persons (id_number),
    insurance        TEXT    NOT NULL,
    first_month      INTEGER NOT NULL,
    last_month       INTEGER NOT NULL,
    last_paid_month  INTEGER NOT NULL DEFAULT 0, -- 0: never paid
    paid_months      INTEGER NOT NULL,
    unpaid_months    INTEGER NOT NULL,
    PRIMARY KEY (id_number, insurance)
) WITHOUT ROWID;
CREATE INDEX person_summary_last_paid ON person_summary (insurance, last_paid_month);
