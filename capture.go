package cache

import (
	"io"
	"maps"
	"net/http"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// captureMode is what the capture does with a response, decided once when
// its header is written.
type captureMode int

const (
	// modePass streams the response to the client and keeps nothing.
	modePass captureMode = iota
	// modeTee streams the response to the client and copies the body into
	// a bounded spool for storing.
	modeTee
	// modeHold sends nothing to the client: the response is a 304 to our
	// own revalidation, or an error replaced by a stale response.
	modeHold
)

// capture wraps the client's ResponseWriter for a forwarded request. The
// client always gets bytes as they come (never delayed by the cache); in
// modeTee they are also appended to a spool bounded by limit, which is
// dropped (and the response just streams) when the body grows past it.
type capture struct {
	*caddyhttp.ResponseWriterWrapper

	// decide picks the mode from the final status and header. It may
	// modify the header (e.g. add Cache-Status) before it is sent.
	decide func(status int, h http.Header) captureMode
	limit  int64
	// onOverflow, when set, runs once when the body outgrows limit.
	onOverflow func()
	// deferred: a response being collected whose length is unknown
	// (chunked) is held, header included, until it outgrows deferLimit, a
	// handler flushes, or the handler returns: a small response is then
	// known complete before anything is sent, and Cache-Status can say
	// stored truthfully (encode holds the start of a body the same way to
	// decide on compression).
	deferred bool

	hdr         http.Header // the header handlers write into
	wroteHeader bool
	status      int
	mode        captureMode
	spool       []byte
	tooLarge    bool
	written     int64
	writeErr    error
}

func newCapture(w http.ResponseWriter, limit int64, decide func(int, http.Header) captureMode) *capture {
	return &capture{
		ResponseWriterWrapper: &caddyhttp.ResponseWriterWrapper{ResponseWriter: w},
		decide:                decide,
		limit:                 limit,
		hdr:                   make(http.Header),
	}
}

// Header returns the header map. Until the header is written it is the
// capture's own, so a held response leaves no trace on the client's.
func (c *capture) Header() http.Header { return c.hdr }

// WriteHeader decides what to do with the response and, unless held, sends
// the header to the client.
func (c *capture) WriteHeader(status int) {
	if c.wroteHeader {
		return
	}
	if status >= 100 && status < 200 && status != http.StatusSwitchingProtocols {
		// Informational responses go straight through and are not recorded.
		real := c.ResponseWriterWrapper.Header()
		maps.Copy(real, c.hdr)
		c.ResponseWriterWrapper.WriteHeader(status)
		for k := range c.hdr {
			delete(real, k)
		}
		return
	}
	c.wroteHeader = true
	c.status = status
	c.mode = c.decide(status, c.hdr)
	if c.mode == modeHold {
		return
	}
	if c.mode == modeTee {
		if n := contentLength(c.hdr); n > 0 && n <= c.limit {
			c.spool = make([]byte, 0, n)
		} else if n < 0 {
			c.deferred = true
			return
		}
	}
	real := c.ResponseWriterWrapper.Header()
	maps.Copy(real, c.hdr)
	c.hdr = real // trailers and late changes go to the real map
	c.ResponseWriterWrapper.WriteHeader(status)
}

// Write sends p to the client first, then copies what was sent into the
// spool.
func (c *capture) Write(p []byte) (int, error) {
	if !c.wroteHeader {
		c.WriteHeader(http.StatusOK)
	}
	if c.mode == modeHold {
		c.written += int64(len(p))
		return len(p), nil
	}
	if c.deferred {
		if int64(len(c.spool)+len(p)) <= min(c.limit, maxDeferred) {
			c.spool = append(c.spool, p...)
			return len(p), nil
		}
		if err := c.release(); err != nil {
			return 0, err
		}
	}
	n, err := c.ResponseWriterWrapper.Write(p)
	c.written += int64(n)
	if c.mode == modeTee {
		if int64(len(c.spool)+n) > c.limit {
			c.spool, c.mode, c.tooLarge = nil, modePass, true
			if c.onOverflow != nil {
				c.onOverflow()
			}
		} else {
			c.spool = append(c.spool, p[:n]...)
		}
	}
	if err != nil && c.writeErr == nil {
		c.writeErr = err
	}
	return n, err
}

// ReadFrom keeps io.Copy (e.g. from file_server) from bypassing the spool;
// when nothing is being collected it keeps the underlying fast path.
func (c *capture) ReadFrom(r io.Reader) (int64, error) {
	if !c.wroteHeader {
		c.WriteHeader(http.StatusOK)
	}
	if c.mode == modePass {
		n, err := c.ResponseWriterWrapper.ReadFrom(r)
		c.written += n
		if err != nil && c.writeErr == nil {
			c.writeErr = err
		}
		return n, err
	}
	return io.Copy(writerOnly{c}, r)
}

// FlushError flushes to the client unless the response is held.
func (c *capture) FlushError() error {
	if !c.wroteHeader {
		c.WriteHeader(http.StatusOK)
	}
	if c.mode == modeHold {
		return nil
	}
	if c.deferred {
		if err := c.release(); err != nil {
			return err
		}
	}
	//nolint:bodyclose
	return http.NewResponseController(c.ResponseWriterWrapper.ResponseWriter).Flush()
}

// maxDeferred bounds how much of a chunked body is held before anything is
// sent.
const maxDeferred = 64 << 10

// release sends a deferred response's header and the body held so far; the
// spool keeps it for storing.
func (c *capture) release() error {
	c.deferred = false
	real := c.ResponseWriterWrapper.Header()
	maps.Copy(real, c.hdr)
	c.hdr = real
	c.ResponseWriterWrapper.WriteHeader(c.status)
	if len(c.spool) == 0 {
		return nil
	}
	n, err := c.ResponseWriterWrapper.Write(c.spool)
	c.written += int64(n)
	if err != nil && c.writeErr == nil {
		c.writeErr = err
	}
	return err
}

// Flush implements http.Flusher.
func (c *capture) Flush() { _ = c.FlushError() }

// complete reports whether the spooled body is the whole response: the
// client took every byte and, when Content-Length was sent, the count
// matches it.
func (c *capture) complete() bool {
	if c.mode != modeTee || c.writeErr != nil || c.tooLarge {
		return false
	}
	if n := contentLength(c.hdr); n >= 0 && n != c.written {
		return false
	}
	return true
}

// writerOnly hides ReadFrom so io.Copy goes through Write.
type writerOnly struct{ io.Writer }

// contentLength parses the Content-Length header, -1 when absent or invalid.
func contentLength(h http.Header) int64 {
	v := h.Get("Content-Length")
	if v == "" {
		return -1
	}
	var n int64
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c < '0' || c > '9' || n > (1<<62)/10 {
			return -1
		}
		n = n*10 + int64(c-'0')
	}
	return n
}

// Interface guards.
var (
	_ http.ResponseWriter = (*capture)(nil)
	_ http.Flusher        = (*capture)(nil)
	_ io.ReaderFrom       = (*capture)(nil)
)
