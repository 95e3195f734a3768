package cache

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

// watchStats is `caddy cache stats --watch`: every --interval it asks
// /cache/stats and prints a compact table with the request rates and the
// hit ratio of the last interval, like varnishstat. On a terminal the
// table replaces the previous one; otherwise (a pipe, a log) each refresh
// is appended after a blank line. It stops after --count refreshes, or
// when the command's context is done (Ctrl-C).
func watchStats(cmd *cobra.Command) error {
	fl := cmd.Flags()
	interval, _ := fl.GetDuration("interval")
	count, _ := fl.GetInt("count")
	if interval <= 0 {
		return fmt.Errorf("--interval %v: must be positive", interval)
	}
	if count < 0 {
		return fmt.Errorf("--count %d: must not be negative", count)
	}
	if j, _ := fl.GetBool("json"); j {
		return errors.New("--watch prints a table; use stats --json without --watch for the API's answer")
	}
	out := cmd.OutOrStdout()
	clear := isTerminal(out)
	ctx := cmd.Context()
	var prev map[string]handlerStats
	var prevAt time.Time
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for n := 1; ; n++ {
		raw, err := adminCall(cmd, http.MethodGet, statsURI(cmd), nil)
		if err != nil {
			return err
		}
		var ans struct {
			Handlers []handlerStats `json:"handlers"`
		}
		if err := json.Unmarshal(raw, &ans); err != nil {
			return fmt.Errorf("decoding the admin API's answer: %v", err)
		}
		now := time.Now()
		var b strings.Builder
		if clear {
			b.WriteString("\x1b[H\x1b[2J")
		} else if n > 1 {
			b.WriteByte('\n')
		}
		writeWatchTable(&b, ans.Handlers, prev, now.Sub(prevAt), now, interval)
		if _, err := io.WriteString(out, b.String()); err != nil {
			return err
		}
		prev, prevAt = map[string]handlerStats{}, now
		for _, s := range ans.Handlers {
			prev[s.Handler] = s
		}
		if count > 0 && n >= count {
			return nil
		}
		if ctx == nil {
			<-ticker.C
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
	}
}

// writeWatchTable writes one refresh: per handler the store's size, the
// rates over elapsed since prev (blank on the first refresh) and the hit
// ratio of that interval (since Caddy started on the first refresh).
func writeWatchTable(w io.Writer, cur []handlerStats, prev map[string]handlerStats, elapsed time.Duration, now time.Time, interval time.Duration) {
	fmt.Fprintf(w, "caddy cache stats  %s  every %v  (rates per second over the last interval)\n\n", now.Format(time.TimeOnly), interval)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "HANDLER\tBACKEND\tENTRIES\tSIZE\tREQ/S\tHIT/S\tMISS/S\tERR/S\tHIT%\tEVICT/S\t")
	for _, s := range cur {
		p, ok := prev[s.Handler]
		rate := func(c, before int64) string {
			if !ok || elapsed <= 0 {
				return "-"
			}
			return fmt.Sprintf("%.1f", float64(max(c-before, 0))/elapsed.Seconds())
		}
		ratio := fmt.Sprintf("%.1f", 100*s.HitRatio)
		if ok {
			hits := (s.Hits + s.Stale) - (p.Hits + p.Stale)
			all := hits + (s.Revalidated - p.Revalidated) + (s.Misses - p.Misses) + (s.Errors - p.Errors)
			ratio = "-"
			if all > 0 {
				ratio = fmt.Sprintf("%.1f", 100*float64(hits)/float64(all))
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", s.Handler, s.Backend, s.Entries, humanBytes(s.Bytes),
			rate(requestsOf(s), requestsOf(p)), rate(s.Hits+s.Stale, p.Hits+p.Stale), rate(s.Misses, p.Misses),
			rate(s.Errors, p.Errors), ratio, rate(s.Evictions, p.Evictions))
	}
	_ = tw.Flush()
	for _, s := range cur {
		if s.Error != "" {
			fmt.Fprintf(w, "%s: %s\n", s.Handler, s.Error)
		}
	}
}

func requestsOf(s handlerStats) int64 {
	return s.Hits + s.Stale + s.Revalidated + s.Misses + s.Bypass + s.Errors
}

// humanBytes writes n with a binary unit: 512B, 1.5KiB, 12.0MiB.
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%dB", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f%ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
