package cache

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddycache/caddy-cache/storage"
)

// Refresh-ahead: with refresh_ahead set, a hit on a fresh entry in the last
// part of its freshness lifetime (the last 10 % with `10%` or `0.1`, the
// last 30 s with `30s`) is served at once and starts one background
// refresh of the entry, so that the entries clients keep asking for are
// renewed before they expire and those clients never wait for the origin.
// The refresh is the stale-while-revalidate machinery's background request
// (refreshInBackground): one per key at a time, shared with
// stale-while-revalidate, a conditional request when the entry has a
// validator. At most refresh_ahead_concurrency refreshes run at once per
// handler; a hit that finds them all busy starts none (the next hit in the
// window tries again). Entries nobody requests are never refreshed.
//
// A duration is capped at half the lifetime: with `30s` and max-age=20, the
// last 10 s. Without the cap, every hit on a just-refreshed entry would
// start the next refresh.

// RefreshAhead is the refresh_ahead option: "10%", "0.1" or "30s"; in
// JSON also a bare number (0.1).
type RefreshAhead string

// UnmarshalJSON accepts a string or a number.
func (r *RefreshAhead) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*r = RefreshAhead(s)
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("refresh_ahead: want a string (\"10%%\", \"0.1\", \"30s\") or a fraction, got %s", b)
	}
	*r = RefreshAhead(n.String())
	return nil
}

// DefaultRefreshAheadConcurrency bounds the concurrent refresh-ahead
// requests of one handler.
const DefaultRefreshAheadConcurrency = 8

// detailRefreshAhead is the Cache-Status detail of a hit that started a
// refresh.
const detailRefreshAhead = "refresh-ahead"

// parseRefreshAhead reads a refresh_ahead value: a percentage ("10%"), a
// fraction ("0.1"), both of the lifetime and strictly between 0 and 1, or
// a positive duration ("30s").
func parseRefreshAhead(s string) (frac float64, window time.Duration, err error) {
	if p, ok := strings.CutSuffix(s, "%"); ok {
		v, err := strconv.ParseFloat(p, 64)
		if err != nil || !(v > 0 && v < 100) {
			return 0, 0, errors.New("want a percentage above 0% and below 100%, a fraction such as 0.1, or a duration such as 30s")
		}
		return v / 100, 0, nil
	}
	if v, err := strconv.ParseFloat(s, 64); err == nil {
		if !(v > 0 && v < 1) {
			return 0, 0, errors.New("a fraction of the lifetime must be above 0 and below 1 (for a duration, give its unit: 30s)")
		}
		return v, 0, nil
	}
	d, err := caddy.ParseDuration(s)
	if err != nil {
		return 0, 0, errors.New("want a percentage (10%), a fraction (0.1) or a duration (30s)")
	}
	if d <= 0 {
		return 0, 0, errors.New("the duration must be positive")
	}
	return 0, d, nil
}

// validateRefreshAhead checks the refresh-ahead options.
func (h *Handler) validateRefreshAhead() error {
	if h.RefreshAhead != "" {
		if _, _, err := parseRefreshAhead(string(h.RefreshAhead)); err != nil {
			return fmt.Errorf("refresh_ahead %q: %v", h.RefreshAhead, err)
		}
	}
	if h.RefreshAheadConcurrency < 0 {
		return fmt.Errorf("refresh_ahead_concurrency must be positive, got %d", h.RefreshAheadConcurrency)
	}
	if h.RefreshAheadConcurrency > 0 && h.RefreshAhead == "" {
		return fmt.Errorf("refresh_ahead_concurrency %d: set refresh_ahead too (refresh-ahead is off)", h.RefreshAheadConcurrency)
	}
	return nil
}

// setupRefreshAhead provisions refresh-ahead (after validateRefreshAhead).
func (h *Handler) setupRefreshAhead() {
	h.refreshFrac, h.refreshDur, h.refreshSlots = 0, 0, nil
	if h.RefreshAhead == "" {
		return
	}
	h.refreshFrac, h.refreshDur, _ = parseRefreshAhead(string(h.RefreshAhead))
	n := h.RefreshAheadConcurrency
	if n == 0 {
		n = DefaultRefreshAheadConcurrency
	}
	h.refreshSlots = make(chan struct{}, n)
}

// refreshWindow is the last part of a freshness lifetime in which a hit
// refreshes the entry.
func (h *Handler) refreshWindow(lifetime time.Duration) time.Duration {
	if h.refreshFrac > 0 {
		return time.Duration(float64(lifetime) * h.refreshFrac)
	}
	return min(h.refreshDur, lifetime/2)
}

// refreshDue reports whether a hit on e at age falls in its refresh window.
func (h *Handler) refreshDue(e *storage.Entry, age time.Duration) bool {
	if h.refreshSlots == nil {
		return false
	}
	left := e.Lifetime - age
	return left > 0 && left <= h.refreshWindow(e.Lifetime)
}

// refreshAhead runs on a fresh hit: in the entry's refresh window it starts
// the background refresh and returns the Cache-Status detail saying so,
// else "".
func (x *exchange) refreshAhead(e *storage.Entry, age time.Duration) string {
	h := x.h
	if !h.refreshDue(e, age) {
		return ""
	}
	started, skipped := x.refreshInBackground(e, detailRefreshAhead, h.refreshSlots)
	switch {
	case started:
		h.countRefreshAhead(refreshStarted)
		return detailRefreshAhead
	case skipped:
		h.countRefreshAhead(refreshSkipped)
	}
	return ""
}

// takeSlot takes a slot of a concurrency bound without waiting; a nil
// bound always has one.
func takeSlot(slots chan struct{}) bool {
	if slots == nil {
		return true
	}
	select {
	case slots <- struct{}{}:
		return true
	default:
		return false
	}
}

// releaseSlot gives back a slot taken with takeSlot.
func releaseSlot(slots chan struct{}) {
	if slots != nil {
		<-slots
	}
}

// refreshExplanation says, for explain, when a fresh entry will be
// refreshed ahead of its expiry, and from when ("" when refresh-ahead is
// off or the entry would not be).
func (h *Handler) refreshExplanation(e *storage.Entry, age time.Duration, now time.Time) (string, time.Time) {
	if h.refreshSlots == nil {
		return "", time.Time{}
	}
	w := h.refreshWindow(e.Lifetime)
	if w <= 0 {
		return "", time.Time{}
	}
	from := e.Lifetime - w // age at which the window opens
	if age >= from {
		return "refresh-ahead: in its last " + durationLabel(w) + ", a hit now refreshes it in the background", now
	}
	at := now.Add(from - age)
	return fmt.Sprintf("refresh-ahead: the first hit from %s (in %s, the last %s of its lifetime) refreshes it in the background",
		at.UTC().Format(time.RFC3339), durationLabel(from-age), durationLabel(w)), at
}

// durationLabel rounds d for messages: whole seconds, or milliseconds
// below a second.
func durationLabel(d time.Duration) string {
	if d < time.Second {
		return d.Round(time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

// parseRefreshAheadOption reads `refresh_ahead <fraction|percentage|duration>`.
func (h *Handler) parseRefreshAheadOption(d *caddyfile.Dispenser) error {
	var raw string
	if !d.AllArgs(&raw) {
		return d.ArgErr()
	}
	if _, _, err := parseRefreshAhead(raw); err != nil {
		return d.Errf("refresh_ahead %q: %v", raw, err)
	}
	h.RefreshAhead = RefreshAhead(raw)
	return nil
}
