package evidence

import (
	"context"
	"database/sql"
	"errors"

	"warden/internal/sqlitedb"
)

// applicationID marks a SQLite file as a warden evidence log ("WEVL"), so
// Open refuses the registry or another program's database.
const applicationID = 0x5745564C

// schemaV1 is the first schema. Every table is covered by the tree or
// checked against it by Verify, so a change to any row is found:
//   - records: one row per leaf. data is the leaf's bytes, hashed into the
//     tree; kind and logged are copies for queries, checked against data.
//     A pruned row keeps only its leaf hash and the index of the prune
//     record that removed the rest.
//   - hashes: the tree's stored hashes (tlog.StoredHashIndex order),
//     recomputed from the records on verify.
//   - checkpoints: every signed checkpoint, chained by seq and prev.
//   - meta: the verifier key and the latest checkpoint's seq, so removing
//     the newest checkpoint is seen.
const schemaV1 = `
CREATE TABLE meta (
	id         INTEGER PRIMARY KEY CHECK (id = 1),
	verifier   TEXT NOT NULL,    -- the note verifier key that signs the checkpoints
	checkpoint INTEGER NOT NULL  -- seq of the latest checkpoint
) STRICT;

CREATE TABLE records (
	idx       INTEGER PRIMARY KEY, -- position in the tree, from 0
	kind      TEXT,                -- the leaf's kind; NULL once pruned
	logged    INTEGER,             -- the leaf's logged time, Unix ns; NULL once pruned
	data      TEXT,                -- the leaf: canonical JSON; NULL once pruned
	leaf      BLOB,                -- tlog.RecordHash(data), set when pruned
	pruned_by INTEGER              -- idx of the prune record, set when pruned
) STRICT;
CREATE INDEX records_logged ON records (logged);

CREATE TABLE hashes (
	id   INTEGER PRIMARY KEY, -- tlog.StoredHashIndex(level, n)
	hash BLOB NOT NULL CHECK (length(hash) = 32)
) STRICT;

CREATE TABLE checkpoints (
	seq  INTEGER PRIMARY KEY, -- the checkpoint's seq line
	note TEXT NOT NULL        -- the signed note
) STRICT;
`

// migrations returns the evidence log's migrations; migrations[i] takes the
// schema from version i to i+1, numbered for this file alone. The first
// also writes the meta row and the first checkpoint through genesis, in the
// transaction that creates the file, so a log never exists unsigned.
// genesis is nil when only reading: a file that still needs it is then
// refused. Append to the list; never edit an entry once released.
func migrations(genesis func(context.Context, *sql.Tx) error) []sqlitedb.Migration {
	return []sqlitedb.Migration{
		// 0 → 1: the first schema and the first checkpoint.
		func(ctx context.Context, tx *sql.Tx) error {
			if genesis == nil {
				return errNeverSigned
			}
			if _, err := tx.ExecContext(ctx, schemaV1); err != nil {
				return err
			}
			return genesis(ctx, tx)
		},
	}
}

var errNeverSigned = errors.New("the evidence log was never initialised")
