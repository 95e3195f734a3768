package cache

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/spf13/cobra"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	"github.com/caddycache/caddy-cache/storage"
)

// snapshotCommands are `caddy cache export` and `caddy cache import`.
func snapshotCommands() []*cobra.Command {
	export := &cobra.Command{
		Use:   "export [--prefix <p>] [--host <h>] [--tag <t>] > cache.snap",
		Short: "Writes a snapshot of the stored responses to stdout",
		Args:  cobra.NoArgs,
		RunE:  runExport,
	}
	export.Flags().String("prefix", "", "Only URLs starting with this prefix")
	export.Flags().String("host", "", "Only URLs of this host")
	export.Flags().String("tag", "", "Only responses with this surrogate key")
	imp := &cobra.Command{
		Use:   "import < cache.snap",
		Short: "Stores the entries of a snapshot read from stdin, keeping newer ones already stored",
		Args:  cobra.NoArgs,
		RunE:  runImport,
	}
	return []*cobra.Command{export, imp}
}

// adminAddress is the admin endpoint the command talks to.
func adminAddress(cmd *cobra.Command) (string, error) {
	fl := cmd.Flags()
	addr, _ := fl.GetString("address")
	cfg, _ := fl.GetString("config")
	adapter, _ := fl.GetString("adapter")
	a, err := caddycmd.DetermineAdminAPIAddress(addr, nil, cfg, adapter)
	if err != nil {
		return "", fmt.Errorf("couldn't determine admin API address: %v", err)
	}
	return a, nil
}

// isTerminal reports whether v is a terminal.
func isTerminal(v any) bool {
	f, ok := v.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func runExport(cmd *cobra.Command, _ []string) error {
	out := cmd.OutOrStdout()
	if isTerminal(out) {
		return errors.New("stdout is a terminal: redirect the snapshot to a file (caddy cache export > cache.snap)")
	}
	addr, err := adminAddress(cmd)
	if err != nil {
		return err
	}
	q := url.Values{}
	for _, f := range []string{"prefix", "host", "tag", "handler"} {
		if v, _ := cmd.Flags().GetString(f); v != "" {
			q.Set(f, v)
		}
	}
	resp, err := caddycmd.AdminAPIRequest(addr, http.MethodGet, "/cache/snapshot?"+q.Encode(), nil, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	// Every byte received goes to stdout as it arrives, and is verified on
	// the way: an export that stops early is reported, not left to be
	// found at import time.
	cw := &countWriter{w: out}
	in := io.TeeReader(resp.Body, cw)
	prog := newProgress(cmd.ErrOrStderr(), "exported")
	sr, err := storage.NewSnapshotReader(in)
	if err != nil {
		_, _ = io.Copy(io.Discard, in)
		return fmt.Errorf("export: %w", err)
	}
	for {
		_, _, err = sr.Next()
		if err != nil {
			break
		}
		prog.update(sr.Records(), cw.n)
	}
	prog.finish()
	if err != io.EOF {
		_, _ = io.Copy(io.Discard, in) // what follows the damage, as received
		if why := resp.Trailer.Get(snapshotErrorTrailer); why != "" {
			err = fmt.Errorf("%w (the server says: %s)", err, why)
		}
		return fmt.Errorf("export incomplete after %d entries: %w", sr.Records(), err)
	}
	h := sr.Header()
	fmt.Fprintf(cmd.ErrOrStderr(), "exported %d entries, %s in %s from handler %s (%s)\n",
		sr.Records(), humanize.IBytes(uint64(cw.n)), prog.elapsed(), h.Handler, h.Backend)
	return nil
}

func runImport(cmd *cobra.Command, _ []string) error {
	in := cmd.InOrStdin()
	if isTerminal(in) {
		return errors.New("stdin is a terminal: give a snapshot (caddy cache import < cache.snap)")
	}
	addr, err := adminAddress(cmd)
	if err != nil {
		return err
	}
	uri := "/cache/snapshot"
	if v, _ := cmd.Flags().GetString("handler"); v != "" {
		uri += "?handler=" + url.QueryEscape(v)
	}
	pr, pw := io.Pipe()
	type answer struct {
		body []byte
		err  error
	}
	done := make(chan answer, 1)
	go func() {
		var ans answer
		resp, err := caddycmd.AdminAPIRequest(addr, http.MethodPost, uri, http.Header{"Content-Type": {"application/octet-stream"}}, pr)
		pr.CloseWithError(errors.New("the request ended")) // unblocks the sender when the server stopped reading early
		if err != nil {
			ans.err = err
		} else {
			ans.body, err = io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				ans.err = fmt.Errorf("reading the answer: %w", err)
			}
		}
		done <- ans
	}()
	// The stream goes to the server as it is read; counting its records
	// on the way gives the progress line.
	cr := &countReader{r: in}
	tee := io.TeeReader(cr, pw)
	prog := newProgress(cmd.ErrOrStderr(), "sent")
	if sr, err := storage.NewSnapshotReader(tee); err == nil {
		for {
			if _, _, err := sr.Next(); err != nil {
				break
			}
			prog.update(sr.Records(), cr.n)
		}
	}
	_, _ = io.Copy(io.Discard, tee) // the rest, damaged or not: the server reports on it
	pw.Close()
	prog.finish()
	ans := <-done

	raw := ans.body
	if ans.err != nil {
		// an error answer carries the report (or just an error) as JSON
		// after the status
		msg := ans.err.Error()
		i := strings.IndexByte(msg, '{')
		if i < 0 {
			return ans.err
		}
		raw = []byte(msg[i:])
	}
	var rep importReport
	if err := json.Unmarshal(raw, &rep); err != nil || rep.Handler == "" {
		if ans.err != nil {
			return ans.err
		}
		return fmt.Errorf("decoding the admin API's answer: %v", err)
	}
	if j, _ := cmd.Flags().GetBool("json"); j {
		_, _ = cmd.OutOrStdout().Write(raw)
	}
	w := cmd.ErrOrStderr()
	fmt.Fprintf(w, "imported %d of %d entries into handler %s (%s) in %s; skipped %d expired, %d already stored as new or newer, %d too large\n",
		rep.Imported, rep.Records, rep.Handler, rep.Backend, prog.elapsed(), rep.SkippedExpired, rep.SkippedNewer, rep.SkippedTooLarge)
	if !rep.Complete {
		return fmt.Errorf("import incomplete: %s", rep.Error)
	}
	return nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// progress prints a line on stderr at most once a second while a transfer
// runs: on a terminal one line rewritten in place, else one line each time.
type progress struct {
	w          io.Writer
	verb       string
	tty        bool
	now        func() time.Time
	start, at  time.Time
	wroteLines bool
}

func newProgress(w io.Writer, verb string) *progress {
	p := &progress{w: w, verb: verb, tty: isTerminal(w), now: time.Now}
	p.start = p.now()
	p.at = p.start
	return p
}

func (p *progress) update(entries, bytes int64) {
	now := p.now()
	if now.Sub(p.at) < time.Second {
		return
	}
	p.at = now
	secs := now.Sub(p.start).Seconds()
	line := fmt.Sprintf("%s %d entries, %s (%.0f entries/s, %s/s)", p.verb, entries, humanize.IBytes(uint64(bytes)),
		float64(entries)/secs, humanize.IBytes(uint64(float64(bytes)/secs)))
	if p.tty {
		fmt.Fprint(p.w, "\r\033[K"+line)
	} else {
		fmt.Fprintln(p.w, line)
	}
	p.wroteLines = true
}

// finish ends the progress line, before the summary.
func (p *progress) finish() {
	if p.tty && p.wroteLines {
		fmt.Fprint(p.w, "\r\033[K")
	}
}

func (p *progress) elapsed() time.Duration {
	return p.now().Sub(p.start).Round(time.Millisecond)
}
