package sqlite

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/caddycache/caddy-cache/storage"
)

// Several processes on one host sharing the file are one cache: the locks
// table lets one of them fetch a cold URL while the others wait for the
// stored response (storage.Locker), and Update replaces an entry in one
// write transaction, so that Vary index updates from several processes are
// all kept (storage.Updater). Both go through the writer connection's
// BEGIN IMMEDIATE transactions, which SQLite serialises across processes
// (waits bounded by busy_timeout).

// lockName is the row name of the lock name: a SHA-256 in hex, so that rows
// stay short whatever the length of the name.
func lockName(name string) string {
	sum := sha256.Sum256([]byte(name))
	return hex.EncodeToString(sum[:])
}

// Lock takes the lock name for ttl when no unexpired holder has it, in one
// write transaction: an expired row is removed, then the row is inserted
// unless another holder's is there. unlock removes the row only while it
// still carries this holder's random token (it may have expired and been
// taken by another).
func (db *DB) Lock(ctx context.Context, name string, ttl time.Duration) (func(), bool, error) {
	if err := ctx.Err(); err != nil {
		return nil, false, err
	}
	conn, err := db.conn()
	if err != nil {
		return nil, false, err
	}
	var b [16]byte
	_, _ = rand.Read(b[:])
	token := hex.EncodeToString(b[:])
	row := lockName(name)
	now := db.now()
	var ok bool
	err = db.writeTx(ctx, conn, func(tx *sql.Tx, ch *changes) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM locks WHERE name = ? AND expires <= ?`, row, now.UnixNano()); err != nil {
			return fmt.Errorf("sqlite storage: taking a lock: %w", err)
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO locks (name, token, expires) VALUES (?, ?, ?) ON CONFLICT (name) DO NOTHING`,
			row, token, now.Add(ttl).UnixNano())
		if err != nil {
			return fmt.Errorf("sqlite storage: taking a lock: %w", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return fmt.Errorf("sqlite storage: taking a lock: %w", err)
		}
		ok = n == 1
		return nil
	})
	if err != nil || !ok {
		return nil, false, err
	}
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if c, err := db.conn(); err == nil {
			_, _ = c.w.ExecContext(ctx, `DELETE FROM locks WHERE name = ? AND token = ?`, row, token)
		}
	}, true, nil
}

// Locked reports whether an unexpired holder has the lock name.
func (db *DB) Locked(ctx context.Context, name string) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	conn, err := db.conn()
	if err != nil {
		return false, err
	}
	var one int
	err = conn.r.QueryRowContext(ctx, `SELECT 1 FROM locks WHERE name = ? AND expires > ?`,
		lockName(name), db.now().UnixNano()).Scan(&one)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("sqlite storage: reading a lock: %w", err)
	}
	return true, nil
}

// Update reads the entry under key, calls fn with it (nil when it is
// absent, expired or cannot be decoded) and stores what fn returns (nothing
// when fn returns nil), all in one write transaction, so that no other
// process or connection writes key in between: fn is called exactly once.
// The entry is written as Put writes it (same encoding, size accounting and
// eviction).
func (db *DB) Update(ctx context.Context, key string, fn func(old *storage.Entry) *storage.Entry, c storage.Compression) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	conn, err := db.conn()
	if err != nil {
		return err
	}
	var w written
	stored := false
	err = db.writeTx(ctx, conn, func(tx *sql.Tx, ch *changes) error {
		now := db.now()
		var old *storage.Entry
		var data []byte
		err := tx.QueryRowContext(ctx, `SELECT data FROM entries WHERE key = ? AND (expires = 0 OR expires > ?)`,
			key, now.UnixNano()).Scan(&data)
		switch {
		case err == nil:
			if e, derr := storage.Decode(data); derr == nil && !e.Expired(now) {
				old = e
			}
		case !errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("sqlite storage: reading entry: %w", err)
		}
		e := fn(old)
		if e == nil {
			return nil
		}
		w, err = db.write(ctx, ch, key, db.prepare(key, e, c, now))
		stored = err == nil
		return err
	})
	if err != nil || !stored {
		return err
	}
	return db.wrote(ctx, key, w)
}

// Lock implements storage.Locker with the database's locks table, shared by
// every process using the file.
func (s *SQLite) Lock(ctx context.Context, name string, ttl time.Duration) (func(), bool, error) {
	return s.db.Lock(ctx, name, ttl)
}

// Locked implements storage.Locker.
func (s *SQLite) Locked(ctx context.Context, name string) (bool, error) {
	return s.db.Locked(ctx, name)
}

// Update implements storage.Updater with one write transaction.
func (s *SQLite) Update(ctx context.Context, key string, fn func(old *storage.Entry) *storage.Entry) error {
	return s.db.Update(ctx, key, fn, s.compression)
}

var (
	_ storage.Locker  = (*SQLite)(nil)
	_ storage.Updater = (*SQLite)(nil)
)
