package cache

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "cache",
		Usage: "<purge|list|inspect|explain|stats|expired|export|import> [args] [--address <interface>]",
		Short: "Inspects and purges the HTTP cache of a running Caddy",
		Long: `
Talks to the cache routes (/cache/) of the running Caddy's admin endpoint.

  caddy cache purge <url> | --prefix <url-prefix> | --host <host> | --tag <tag> | --group <group> [--origin <origin>] | --all [--dry-run]
  caddy cache list [--prefix <url-prefix>] [--host <host>] [--tag <tag>] [--older-than <duration>] [--status <code>] [--limit <n>]
  caddy cache inspect <key> [--body]     (<key> as list prints it)
  caddy cache explain <url> [-H 'Name: Value']... [--method <method>]
  caddy cache stats [--watch [--interval <duration>] [--count <n>]]
  caddy cache expired [--stale] [--dry-run]
  caddy cache export [--prefix <url-prefix>] [--host <host>] [--tag <tag>] > cache.snap
  caddy cache import < cache.snap

--handler <name> addresses one cache handler (default: all of them); --json
prints the API's answer as it is.

As with 'caddy reload', the admin endpoint is taken from --address if given,
otherwise from the config file given with --config (and --adapter),
otherwise the default (localhost:2019).
`,
		CobraFunc: setupCacheCommand,
	})
}

// setupCacheCommand adds the flags and subcommands of `caddy cache` to cmd.
func setupCacheCommand(cmd *cobra.Command) {
	pf := cmd.PersistentFlags()
	pf.String("address", "", "Address of the administration endpoint, if different from the config")
	pf.StringP("config", "c", "", "Configuration file to read the admin address from")
	pf.StringP("adapter", "a", "", "Name of config adapter to apply to --config")
	pf.String("handler", "", "Name of the cache handler to address (default: all)")
	pf.Bool("json", false, "Print the admin API's JSON answer")

	purge := &cobra.Command{
		Use:   "purge [<url>] [--prefix <p> | --host <h> | --tag <t> | --group <g> [--origin <o>] | --all] [--dry-run]",
		Short: "Removes stored responses: one URL (all its variants), a URL prefix, a host, a tag, a cache group or everything",
		Args:  cobra.MaximumNArgs(1),
		RunE:  runPurge,
	}
	purge.Flags().String("prefix", "", "Purge every URL starting with this prefix (scheme://host/path)")
	purge.Flags().String("host", "", "Purge every URL of this host")
	purge.Flags().String("tag", "", "Purge every response recorded with this surrogate key")
	purge.Flags().String("group", "", "Purge every response in this cache group (Cache-Groups, RFC 9875; case-sensitive)")
	purge.Flags().String("origin", "", "With --group: only the group of this origin (scheme://host[:port])")
	purge.Flags().Bool("all", false, "Purge everything")
	purge.Flags().Bool("dry-run", false, "Only report what would be removed")

	list := &cobra.Command{
		Use:   "list [--prefix <p>] [--host <h>] [--tag <t>] [--older-than <duration>] [--status <code>] [--limit <n>]",
		Short: "Lists stored responses",
		Args:  cobra.NoArgs,
		RunE:  runList,
	}
	list.Flags().String("prefix", "", "Only URLs starting with this prefix")
	list.Flags().String("host", "", "Only URLs of this host")
	list.Flags().String("tag", "", "Only responses with this surrogate key")
	list.Flags().String("older-than", "", "Only responses at least this old (current age), e.g. 90s, 1h, 2d")
	list.Flags().Int("status", 0, "Only responses stored with this status code")
	list.Flags().Int("limit", 0, "Stop after this many entries (default: all)")

	inspect := &cobra.Command{
		Use:   "inspect <key> [--body]",
		Short: "Shows one stored entry with its header",
		Args:  cobra.ExactArgs(1),
		RunE:  runInspect,
	}
	inspect.Flags().Bool("body", false, "Include the body")

	explain := &cobra.Command{
		Use:   "explain <url> [-H 'Name: Value']... [--method <method>]",
		Short: "Says whether a request would be served from the cache, and why not",
		Args:  cobra.ExactArgs(1),
		RunE:  runExplain,
	}
	explain.Flags().StringArrayP("header", "H", nil, "Request header 'Name: Value' (repeatable)")
	explain.Flags().String("method", "GET", "Request method")

	stats := &cobra.Command{
		Use:   "stats [--watch [--interval <duration>] [--count <n>]]",
		Short: "Shows entries, bytes, hits, misses and hit ratio per cache handler",
		Args:  cobra.NoArgs,
		RunE:  runStats,
	}
	stats.Flags().BoolP("watch", "w", false, "Refresh a compact table with rates until interrupted, like varnishstat")
	stats.Flags().Duration("interval", time.Second, "Time between refreshes with --watch")
	stats.Flags().Int("count", 0, "With --watch, stop after this many refreshes (default: until interrupted)")

	expired := &cobra.Command{
		Use:   "expired [--stale] [--dry-run]",
		Short: "Removes expired entries now",
		Args:  cobra.NoArgs,
		RunE:  runExpired,
	}
	expired.Flags().Bool("stale", false, "Also remove responses past their freshness")
	expired.Flags().Bool("dry-run", false, "Only report what would be removed")

	cmd.AddCommand(purge, list, inspect, explain, stats, expired)
	cmd.AddCommand(snapshotCommands()...) // snapshot_cmd.go
}

// adminCall sends one request to the cache admin API and returns the body.
func adminCall(cmd *cobra.Command, method, uri string, body any) ([]byte, error) {
	fl := cmd.Flags()
	addr, _ := fl.GetString("address")
	cfg, _ := fl.GetString("config")
	adapter, _ := fl.GetString("adapter")
	adminAddr, err := caddycmd.DetermineAdminAPIAddress(addr, nil, cfg, adapter)
	if err != nil {
		return nil, fmt.Errorf("couldn't determine admin API address: %v", err)
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	resp, err := caddycmd.AdminAPIRequest(adminAddr, method, uri, nil, rd)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return io.ReadAll(resp.Body)
}

// output prints raw JSON with --json, else calls human.
func output(cmd *cobra.Command, raw []byte, v any, human func(io.Writer)) error {
	if j, _ := cmd.Flags().GetBool("json"); j {
		_, err := cmd.OutOrStdout().Write(raw)
		return err
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("decoding the admin API's answer: %v", err)
	}
	human(cmd.OutOrStdout())
	return nil
}

func runPurge(cmd *cobra.Command, args []string) error {
	fl := cmd.Flags()
	var req purgeRequest
	req.Prefix, _ = fl.GetString("prefix")
	req.Host, _ = fl.GetString("host")
	req.Tag, _ = fl.GetString("tag")
	req.Group, _ = fl.GetString("group")
	req.Origin, _ = fl.GetString("origin")
	req.All, _ = fl.GetBool("all")
	req.DryRun, _ = fl.GetBool("dry-run")
	req.Handler, _ = fl.GetString("handler")
	if len(args) == 1 {
		req.URL = args[0]
	}
	if _, err := req.check(); err != nil {
		return err
	}
	raw, err := adminCall(cmd, http.MethodPost, "/cache/purge", req)
	if err != nil {
		return err
	}
	var ans purgeAnswer
	return output(cmd, raw, &ans, func(w io.Writer) { printPurge(w, ans) })
}

func printPurge(w io.Writer, ans purgeAnswer) {
	results := make([]expiredResult, len(ans.Results))
	for i, r := range ans.Results {
		results[i].purgeResult = r
	}
	printRemoved(w, ans.DryRun, ans.Removed, results)
}

// printRemoved prints the answer of a purge or of expired.
func printRemoved(w io.Writer, dry bool, removed int, results []expiredResult) {
	verb := "removed"
	if dry {
		verb = "would remove"
	}
	for _, r := range results {
		fmt.Fprintf(w, "%s (%s): %s %d\n", r.Handler, r.Backend, verb, r.Removed)
		if r.Uncounted {
			fmt.Fprintf(w, "  and the expired entries %s removes in its own sweep, which it cannot count ahead\n", r.Backend)
		}
		if dry {
			for _, k := range r.Keys {
				fmt.Fprintf(w, "  %s\n", printableKey(k))
			}
			if r.KeysTruncated {
				fmt.Fprintln(w, "  …")
			}
		}
		if r.Error != "" {
			fmt.Fprintf(w, "  error: %s\n", r.Error)
		}
	}
	fmt.Fprintf(w, "total: %s %d\n", verb, removed)
}

// keyHeaderSep stands for the newline before each key header line in the
// keys the CLI prints.
const keyHeaderSep = " | "

// printableKey is a key on one line: a variant's suffix as "#vary=" (the
// admin API already shows it so) and the newline of key header lines as
// " | ". inspect takes both back.
func printableKey(k string) string {
	return strings.ReplaceAll(displayKey(k), "\n", keyHeaderSep)
}

func runList(cmd *cobra.Command, _ []string) error {
	fl := cmd.Flags()
	q := url.Values{}
	for _, f := range []string{"prefix", "host", "tag", "handler", "older-than"} {
		if v, _ := fl.GetString(f); v != "" {
			q.Set(strings.ReplaceAll(f, "-", "_"), v)
		}
	}
	if v, _ := fl.GetInt("status"); v != 0 {
		q.Set("status", strconv.Itoa(v))
	}
	limit, _ := fl.GetInt("limit")
	asJSON, _ := fl.GetBool("json")
	var all []entryInfo
	cursor := ""
	for {
		page := maxListLimit
		if limit > 0 && limit-len(all) < page {
			page = limit - len(all)
		}
		q.Set("limit", strconv.Itoa(page))
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		raw, err := adminCall(cmd, http.MethodGet, "/cache/entries?"+q.Encode(), nil)
		if err != nil {
			return err
		}
		var ans struct {
			Entries    []entryInfo `json:"entries"`
			NextCursor string      `json:"next_cursor"`
		}
		if err := json.Unmarshal(raw, &ans); err != nil {
			return fmt.Errorf("decoding the admin API's answer: %v", err)
		}
		all = append(all, ans.Entries...)
		cursor = ans.NextCursor
		if cursor == "" || (limit > 0 && len(all) >= limit) {
			break
		}
	}
	if asJSON {
		enc := json.NewEncoder(cmd.OutOrStdout())
		enc.SetIndent("", "  ")
		return enc.Encode(struct {
			Entries []entryInfo `json:"entries"`
		}{all})
	}
	tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "HANDLER\tSTATUS\tSIZE\tAGE\tTTL\tTAGS\tKEY")
	now := time.Now()
	for _, e := range all {
		ttl := "stale"
		if e.Fresh {
			ttl = e.FreshUntil.Sub(now).Truncate(time.Second).String()
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%ds\t%s\t%s\t%s\n", e.Handler, e.Status, e.Size, e.Age, ttl,
			strings.Join(e.Tags, ","), printableKey(e.Key))
	}
	return tw.Flush()
}

func runInspect(cmd *cobra.Command, args []string) error {
	q := url.Values{}
	if v, _ := cmd.Flags().GetString("handler"); v != "" {
		q.Set("handler", v)
	}
	if b, _ := cmd.Flags().GetBool("body"); b {
		q.Set("body", "1")
	}
	query := ""
	if len(q) > 0 {
		query = "?" + q.Encode()
	}
	raw, err := adminCall(cmd, http.MethodGet, "/cache/entries/"+url.PathEscape(args[0])+query, nil)
	if err != nil && strings.Contains(args[0], keyHeaderSep) && strings.Contains(err.Error(), "HTTP 404") {
		// a key as list prints it, key header lines joined with " | "
		k := strings.ReplaceAll(args[0], keyHeaderSep, "\n")
		if r, err2 := adminCall(cmd, http.MethodGet, "/cache/entries/"+url.PathEscape(k)+query, nil); err2 == nil {
			raw, err = r, nil
		}
	}
	if err != nil {
		return err
	}
	// inspect is for reading: always print the indented JSON
	_, err = cmd.OutOrStdout().Write(raw)
	return err
}

func runExplain(cmd *cobra.Command, args []string) error {
	fl := cmd.Flags()
	q := url.Values{"url": {args[0]}}
	if m, _ := fl.GetString("method"); m != "" {
		q.Set("method", m)
	}
	hdrs, _ := fl.GetStringArray("header")
	for _, hv := range hdrs {
		q.Add("header", hv)
	}
	if v, _ := fl.GetString("handler"); v != "" {
		q.Set("handler", v)
	}
	raw, err := adminCall(cmd, http.MethodGet, "/cache/explain?"+q.Encode(), nil)
	if err != nil {
		return err
	}
	var ans struct {
		URL     string          `json:"url"`
		Method  string          `json:"method"`
		Results []explainResult `json:"results"`
	}
	return output(cmd, raw, &ans, func(w io.Writer) {
		fmt.Fprintf(w, "%s %s\n", ans.Method, ans.URL)
		for _, r := range ans.Results {
			fmt.Fprintf(w, "%s (%s): %s — %s\n", r.Handler, r.Backend, strings.ToUpper(r.Outcome), r.Reason)
			if r.Entry != nil && len(r.Entry.Groups) > 0 {
				fmt.Fprintf(w, "  groups: %s\n", strings.Join(quoteAll(r.Entry.Groups), ", "))
			}
		}
	})
}

func statsURI(cmd *cobra.Command) string {
	uri := "/cache/stats"
	if v, _ := cmd.Flags().GetString("handler"); v != "" {
		uri += "?handler=" + url.QueryEscape(v)
	}
	return uri
}

func runStats(cmd *cobra.Command, _ []string) error {
	if w, _ := cmd.Flags().GetBool("watch"); w {
		return watchStats(cmd)
	}
	for _, f := range []string{"interval", "count"} {
		if cmd.Flags().Changed(f) {
			return fmt.Errorf("--%s needs --watch", f)
		}
	}
	raw, err := adminCall(cmd, http.MethodGet, statsURI(cmd), nil)
	if err != nil {
		return err
	}
	var ans struct {
		Handlers []handlerStats `json:"handlers"`
	}
	return output(cmd, raw, &ans, func(w io.Writer) {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "HANDLER\tBACKEND\tENTRIES\tBYTES\tHITS\tSTALE\tREVALIDATED\tMISSES\tBYPASS\tERRORS\tHIT RATIO\tEVICTIONS")
		for _, s := range ans.Handlers {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%.1f%%\t%d\n", s.Handler, s.Backend, s.Entries, s.Bytes,
				s.Hits, s.Stale, s.Revalidated, s.Misses, s.Bypass, s.Errors, 100*s.HitRatio, s.Evictions)
		}
		_ = tw.Flush()
		for _, s := range ans.Handlers {
			if s.Error != "" {
				fmt.Fprintf(w, "%s: %s\n", s.Handler, s.Error)
			}
		}
	})
}

func runExpired(cmd *cobra.Command, _ []string) error {
	fl := cmd.Flags()
	var req expiredRequest
	req.Stale, _ = fl.GetBool("stale")
	req.DryRun, _ = fl.GetBool("dry-run")
	req.Handler, _ = fl.GetString("handler")
	raw, err := adminCall(cmd, http.MethodPost, "/cache/expired", req)
	if err != nil {
		return err
	}
	var ans struct {
		DryRun  bool            `json:"dry_run"`
		Removed int             `json:"removed"`
		Results []expiredResult `json:"results"`
	}
	return output(cmd, raw, &ans, func(w io.Writer) { printRemoved(w, ans.DryRun, ans.Removed, ans.Results) })
}
