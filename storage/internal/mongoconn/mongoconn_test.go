package mongoconn

import (
	"strings"
	"testing"
	"time"
)

func TestDisplayAndKeyHideCredentials(t *testing.T) {
	for uri, want := range map[string]string{
		"mongodb://u:hunter2@h1:1,h2:2/db?authSource=admin": "mongodb://h1:1,h2:2",
		"mongodb+srv://u:p%40ss@cluster.example.com/db":     "mongodb+srv://cluster.example.com",
		"mongodb://h/":        "mongodb://h",
		"mongodb://a@b:c@h:1": "mongodb://h:1",
	} {
		if got := Display(uri); got != want {
			t.Errorf("Display(%q) = %q, want %q", uri, got, want)
		}
	}
	a := Key("mongodb://u:hunter2@h:1/", time.Second)
	b := Key("mongodb://u:other@h:1/", time.Second)
	if strings.Contains(a, "hunter2") || a == b || a != Key("mongodb://u:hunter2@h:1/", time.Second) || a == Key("mongodb://u:hunter2@h:1/", 2*time.Second) {
		t.Fatalf("Key: %q / %q: want stable, distinct per password and timeout, password-free", a, b)
	}
}

func TestResolveURI(t *testing.T) {
	t.Setenv("CACHE_TEST_URI", " mongodb://u:hunter2@127.0.0.1:9/ ")
	got, err := ResolveURI("{env.CACHE_TEST_URI}")
	if err != nil || got != "mongodb://u:hunter2@127.0.0.1:9/" {
		t.Fatalf("ResolveURI of a placeholder: %q, %v", got, err)
	}
	for raw, want := range map[string]string{
		"":                                    "uri is required",
		"{env.CACHE_TEST_UNSET}":              "uri is required",
		"postgres://h":                        `must start with "mongodb://"`,
		"mongodb://u:hunter2@h:notaport/":     "invalid",
		"mongodb+srv://u:hunter2@a.com,b.com": "exactly one host",
	} {
		_, err := ResolveURI(raw)
		if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("ResolveURI(%q): %v, want an error mentioning %q without the password", raw, err, want)
		}
	}
}

func TestExpiresAtRoundsUp(t *testing.T) {
	base := time.Date(2030, 1, 2, 3, 4, 5, 0, time.FixedZone("x", 3600))
	for _, tc := range []struct{ in, want time.Time }{
		{base.Add(123 * time.Millisecond), base.Add(123 * time.Millisecond)},
		{base.Add(123*time.Millisecond + 1), base.Add(124 * time.Millisecond)},
		{base.Add(999999 * time.Nanosecond), base.Add(time.Millisecond)},
	} {
		got := ExpiresAt(tc.in)
		if !got.Equal(tc.want) || got.Location() != time.UTC {
			t.Errorf("ExpiresAt(%v) = %v, want %v in UTC", tc.in, got, tc.want)
		}
	}
}
