package cache

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// FuzzCaddyfile feeds arbitrary text as the tokens that follow the cache
// directive: the handler's UnmarshalCaddyfile (and through `storage`, every
// backend's), the JSON it produces and Validate, then the whole Caddyfile
// adapter, must never panic. The seed corpus is the golden files in
// testdata/caddyfile_adapt (what follows `cache` in each).
//
// Run longer with: make fuzz FUZZ=FuzzCaddyfile PKG=. TIME=5m
func FuzzCaddyfile(f *testing.F) {
	files, err := filepath.Glob("testdata/caddyfile_adapt/*.caddyfiletest")
	if err != nil || len(files) == 0 {
		f.Fatalf("no golden files: %v", err)
	}
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		src, _, _ := strings.Cut(string(data), "----------")
		if _, rest, ok := strings.Cut(src, "cache"); ok {
			f.Add(rest)
		}
	}
	f.Add("")
	f.Add("{\n}")
	f.Add("{\n\tstorage\n}")
	f.Add("{\n\tkey {\n\t\theaders\n\t}\n}")
	f.Add("{\n\tttl\n\tttl a b c\n}")
	f.Add("{\n\tstorage memory {\n\t\tmax_size\n\t}\n}")
	f.Add("{\n\tstorage redis {\n\t\taddress\n\t}\n}")

	f.Fuzz(func(t *testing.T, input string) {
		if strings.Contains(input, "import") {
			return // would read files named by the input
		}
		h := new(Handler)
		if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser("cache " + input)); err == nil {
			b, err := json.Marshal(h)
			if err != nil {
				t.Fatalf("marshalling the parsed handler: %v", err)
			}
			var back Handler
			if err := json.Unmarshal(b, &back); err != nil {
				t.Fatalf("the parsed handler's JSON does not load: %v\n%s", err, b)
			}
			_ = back.Validate()
		}
		_, _, _ = adapt(":8080 {\n\tcache " + input + "\n}\n")
	})
}
