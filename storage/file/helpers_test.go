package file

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/caddyserver/caddy/v2"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

var bg = context.Background()

// provision loads cfg as a module on a fresh Caddy context, waits for the
// first count of the directory, and releases the handle when the test ends.
func provision(t testing.TB, cfg File) *File {
	t.Helper()
	f := cfg
	ctx, cancel := newContext()
	t.Cleanup(cancel)
	if err := f.Provision(ctx); err != nil {
		t.Fatalf("Provision: %v", err)
	}
	t.Cleanup(func() {
		if err := f.Cleanup(); err != nil {
			t.Errorf("Cleanup: %v", err)
		}
	})
	<-f.dir.loop.Ready()
	return &f
}

func newContext() (caddy.Context, context.CancelFunc) {
	return caddy.NewContext(caddy.Context{Context: context.Background()})
}

func ptr[T any](v T) *T { return &v }

func caddyDuration(d time.Duration) caddy.Duration { return caddy.Duration(d) }

func refs(path string) int {
	n, _ := pool.References("file:" + path)
	return n
}

// diskFiles lists the files under root (relative paths) and their total size.
func diskFiles(t testing.TB, root string) (names []string, total int64) {
	t.Helper()
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			fi, err := d.Info()
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(root, p)
			names = append(names, rel)
			total += fi.Size()
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walking %s: %v", root, err)
	}
	return names, total
}

// entryFiles is diskFiles without temporary files.
func entryFiles(t testing.TB, root string) (n int, total int64) {
	names, _ := diskFiles(t, root)
	for _, name := range names {
		if strings.HasPrefix(filepath.Base(name), tempPrefix) {
			continue
		}
		fi, err := os.Stat(filepath.Join(root, name))
		if err != nil {
			t.Fatal(err)
		}
		n++
		total += fi.Size()
	}
	return n, total
}
