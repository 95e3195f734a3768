package cache

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddytest"
)

// TestCaddyfileAdapt runs every testdata/caddyfile_adapt/*.caddyfiletest: a
// Caddyfile, a line of dashes, then either the expected JSON or the text the
// adapt error must contain (errors must also point at the Caddyfile line).
// UPDATE_GOLDEN=1 rewrites the JSON of the non-error files.
func TestCaddyfileAdapt(t *testing.T) {
	files, err := filepath.Glob("testdata/caddyfile_adapt/*.caddyfiletest")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden files: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			parts := strings.SplitN(string(data), "----------", 2)
			if len(parts) != 2 {
				t.Fatalf("%s: no ---------- separator", f)
			}
			input := strings.TrimSpace(parts[0]) + "\n"
			want := strings.TrimSpace(parts[1])
			if strings.HasPrefix(filepath.Base(f), "err-") {
				_, _, err := adapt(input)
				if err == nil {
					t.Fatalf("adapting succeeded, want an error containing %q", want)
				}
				if !strings.Contains(err.Error(), want) {
					t.Fatalf("error %q does not contain %q", err, want)
				}
				if !strings.Contains(err.Error(), "Caddyfile:") {
					t.Fatalf("error %q does not name the Caddyfile line", err)
				}
				return
			}
			if os.Getenv("UPDATE_GOLDEN") == "1" {
				out, _, err := adapt(input)
				if err != nil {
					t.Fatal(err)
				}
				var v any
				_ = json.Unmarshal(out, &v)
				pretty, _ := json.MarshalIndent(v, "", "\t")
				if err := os.WriteFile(f, []byte(strings.TrimSpace(parts[0])+"\n----------\n"+string(pretty)+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if !caddytest.CompareAdapt(t, f, input, "caddyfile", want) {
				t.Fatalf("adapted JSON differs from %s", f)
			}
		})
	}
}

func adapt(input string) ([]byte, []caddyconfig.Warning, error) {
	return caddyconfig.GetAdapter("caddyfile").Adapt([]byte(input), map[string]any{"filename": "Caddyfile"})
}
