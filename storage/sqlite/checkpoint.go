package sqlite

import (
	"database/sql"
	"sync/atomic"
	"time"
)

// checkpointer copies the WAL back into the database file in the
// background, on a connection of its own, once the writes since the last
// checkpoint reach walAutocheckpoint pages (an estimate the writes keep,
// corrected by each checkpoint's own count).
//
// SQLite's automatic checkpoint runs inside the commit that crosses the
// threshold, so the Puts of that group commit, a purge's batch or an
// eviction wait for it, sync included. A PASSIVE checkpoint on another
// connection runs beside the writer and the readers, taking no lock they
// need. Storing 20,000 distinct 16 KB entries from 8 goroutines
// (BenchmarkPutParallel16KB) took 0.8× the time for incompressible bodies
// with two CPUs, and the same time on one CPU, where the copy's CPU time is
// still spent beside the Puts (with no checkpoint at all: 0.6×). The
// writer keeps an automatic checkpoint at
// walBackstop pages, for when this one falls behind (readers holding old
// snapshots, a slow disk).
type checkpointer struct {
	db     *sql.DB
	frames atomic.Int64 // pages written since the last checkpoint (estimate)
	runs   atomic.Int64 // checkpoints done
	kick   chan struct{}
	stop   chan struct{}
	done   chan struct{}
}

// walBackstop is the writer's own automatic checkpoint, in pages.
const walBackstop = 4 * walAutocheckpoint

// checkpointGap is the least time between two checkpoints, so that one that
// cannot finish (a reader on an old snapshot) is not retried at every
// commit.
const checkpointGap = 50 * time.Millisecond

// startCheckpointer opens the checkpointer's connection to path and starts
// its goroutine.
func startCheckpointer(path string, opts connOptions) (*checkpointer, error) {
	db, err := openPool(path, opts, roleCheckpointer, 1)
	if err != nil {
		return nil, err
	}
	if err := db.Ping(); err != nil {
		db.Close()
		return nil, err
	}
	k := &checkpointer{db: db, kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go k.run()
	return k, nil
}

// wrote records that a committed transaction wrote about that many pages to the
// WAL, and wakes the goroutine when a checkpoint is due. k may be nil (no
// WAL).
func (k *checkpointer) wrote(pages int64) {
	if k == nil || k.frames.Add(pages) < walAutocheckpoint {
		return
	}
	select {
	case k.kick <- struct{}{}:
	default:
	}
}

func (k *checkpointer) run() {
	defer close(k.done)
	for {
		select {
		case <-k.stop:
			return
		case <-k.kick:
		}
		k.checkpoint()
		select {
		case <-k.stop:
			return
		case <-time.After(checkpointGap):
		}
	}
}

// checkpoint copies what it can of the WAL into the file. An error leaves
// the estimate as it is: the next commit tries again (after
// checkpointGap), and the writer's backstop bounds the WAL meanwhile.
func (k *checkpointer) checkpoint() {
	var busy, log, copied int64
	if err := k.db.QueryRow(`PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &log, &copied); err != nil {
		return
	}
	k.frames.Store(max(log-copied, 0))
	k.runs.Add(1)
}

// close stops the goroutine and closes the connection; k may be nil.
func (k *checkpointer) close() error {
	if k == nil {
		return nil
	}
	close(k.stop)
	<-k.done
	return k.db.Close()
}
