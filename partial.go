package cache

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/caddycache/caddy-cache/policy"
	"github.com/caddycache/caddy-cache/storage"
)

// Partial content (RFC 9111 §3.3, §3.4).
//
// A 206 with a single byte range, a known complete length and a strong
// validator is stored. The parts of one representation share one entry,
// under the key (or variant key) its 200 would have: a KindResponse entry
// with Status 206 whose Body holds the parts one after the other, in
// ascending order, and whose Header holds one Content-Range value per part
// in the same order ("bytes 0-99/1000", "bytes 500-599/1000"), no
// Content-Length, and otherwise the header fields of the newest part. The
// stored-entry format is unchanged: every backend stores such an entry as
// any other, and an entry whose Content-Range values do not describe its
// body is treated as a miss.
//
// A later 206 with the same strong validator is combined with the parts
// stored under its key when it arrives (read again under a per-key lock of
// the process, so that parts fetched at the same time are all kept):
// overlapping and adjacent ranges are merged, and its header fields, and
// so its freshness, replace the stored ones (§3.4). A part whose validator
// differs replaces the set. When the parts cover the whole
// representation the entry becomes a complete 200. An entry holds at most
// maxParts parts and at most max_entry_size bytes; when combining would
// exceed either, the new part replaces the set.
//
// A stored 206 answers a request for one byte range that lies within one
// stored part (If-Range, when sent, must match the stored validator); any
// other request (no Range, several ranges, a range not stored) is
// forwarded as it came, with Cache-Status fwd=partial, and its answer (a
// 206 is combined, a 200 replaces the parts) is stored.

// maxParts bounds the number of separate parts an entry holds.
const maxParts = 16

// reprStatus is the status whose storage and freshness rules apply to a
// response: a 206 carries part of a 200's representation (RFC 9110
// §15.3.7 makes it heuristically cacheable as 200 is).
func reprStatus(status int) int {
	if status == http.StatusPartialContent {
		return http.StatusOK
	}
	return status
}

// partSet is the parts of a stored entry: a 206 entry's, or a complete
// 200's (one part covering it) when it has a strong validator.
type partSet struct {
	complete int64
	ranges   []policy.ByteRange
	body     []byte // nil for List metadata
}

// partsOf reads the parts of e. ok is false when e holds none that can be
// used: a 206 whose Content-Range values do not describe its body
// (corrupt), or a 200 without strong validator or body.
func partsOf(e *storage.Entry) (ps partSet, ok bool) {
	size := e.BodySize
	if e.Body != nil {
		size = int64(len(e.Body))
	}
	ps.body = e.Body
	switch e.Status {
	case http.StatusOK:
		if _, strong := policy.StrongValidator(e.Header); !strong || size == 0 || e.Header.Get("Content-Range") != "" {
			return partSet{}, false
		}
		ps.complete = size
		ps.ranges = []policy.ByteRange{{First: 0, Last: size - 1}}
		return ps, true
	case http.StatusPartialContent:
	default:
		return partSet{}, false
	}
	vals := e.Header["Content-Range"]
	if len(vals) == 0 || len(vals) > maxParts {
		return partSet{}, false
	}
	var total int64
	for i, v := range vals {
		r, n, ok := policy.ContentRange(v)
		if !ok || (i > 0 && (n != ps.complete || r.First <= ps.ranges[i-1].Last)) {
			return partSet{}, false
		}
		ps.complete = n
		ps.ranges = append(ps.ranges, r)
		total += r.Len()
	}
	if total != size {
		return partSet{}, false
	}
	return ps, true
}

// parts returns the stored parts with their bytes.
func (ps partSet) parts() []policy.Part {
	out := make([]policy.Part, len(ps.ranges))
	var off int64
	for i, r := range ps.ranges {
		out[i] = policy.Part{Range: r, Data: ps.body[off : off+r.Len()]}
		off += r.Len()
	}
	return out
}

// slice returns the bytes of r, which lies within the i-th stored part.
func (ps partSet) slice(i int, r policy.ByteRange) []byte {
	var off int64
	for _, p := range ps.ranges[:i] {
		off += p.Len()
	}
	off += r.First - ps.ranges[i].First
	return ps.body[off : off+r.Len()]
}

// describe lists the stored ranges: "bytes 0-99, 500-599 of 1000".
func (ps partSet) describe() string {
	s := make([]string, len(ps.ranges))
	for i, r := range ps.ranges {
		s[i] = r.String()
	}
	return "bytes " + strings.Join(s, ", ") + " of " + strconv.FormatInt(ps.complete, 10)
}

// partialUse says why a stored 206 cannot answer r, or "" when it can:
// r asks for one byte range (or only unsatisfiable ones: 416) within a
// stored part, and its If-Range, if any, matches the stored validator.
func partialUse(r *http.Request, e *storage.Entry) string {
	ps, ok := partsOf(e)
	if !ok {
		return "stored parts unreadable"
	}
	rng := r.Header.Values("Range")
	switch {
	case len(rng) == 0:
		return "no Range: only parts are stored"
	case len(rng) > 1:
		return "several Range fields"
	}
	ranges, ok := policy.ParseRange(rng[0], ps.complete)
	switch {
	case !ok:
		return "Range not a valid byte range set"
	case !policy.IfRangeMatches(r.Header, e.Header):
		return "If-Range does not match the stored parts"
	case len(ranges) > 1:
		return "several ranges"
	case len(ranges) == 1 && policy.Covering(ps.ranges, ranges[0]) < 0:
		return "range not stored (" + ps.describe() + " are)"
	}
	return ""
}

// writePartial answers the request from a stored 206 whose parts cover its
// range (partialUse said so): a 206 with that range, or a 416 when the
// request's ranges are all unsatisfiable. hdr already holds the stored
// header fields, Age and Cache-Status.
func (x *exchange) writePartial(e *storage.Entry, hdr http.Header) error {
	delete(hdr, "Content-Range")
	delete(hdr, "Content-Length")
	ps, ok := partsOf(e)
	var ranges []policy.ByteRange
	if ok {
		ranges, ok = policy.ParseRange(x.r.Header.Get("Range"), ps.complete)
	}
	i := -1
	if ok && len(ranges) == 1 {
		i = policy.Covering(ps.ranges, ranges[0])
	}
	switch {
	case ok && len(ranges) == 0:
		hdr["Content-Range"] = []string{"bytes */" + strconv.FormatInt(ps.complete, 10)}
		x.w.WriteHeader(http.StatusRequestedRangeNotSatisfiable)
		return nil
	case i < 0:
		// partialUse checked the request against this entry: not reached
		x.w.WriteHeader(http.StatusBadGateway)
		return nil
	}
	data := ps.slice(i, ranges[0])
	hdr["Content-Range"] = []string{policy.FormatContentRange(ranges[0], ps.complete)}
	hdr["Content-Length"] = []string{strconv.Itoa(len(data))}
	x.w.WriteHeader(http.StatusPartialContent)
	if x.r.Method != http.MethodHead {
		_, _ = x.w.Write(data)
	}
	return nil
}

// storablePart says why a 206 is not stored, or "" when it may be (RFC
// 9111 §3.3): one byte range with a known complete length, a
// Content-Length (when sent) that matches it, and a strong validator.
func storablePart(hdr http.Header) string {
	cr := hdr.Values("Content-Range")
	if len(cr) == 0 {
		return "multipart 206"
	}
	r, _, ok := policy.ContentRange(cr[0])
	switch {
	case len(cr) > 1 || !ok:
		return "206 without a usable Content-Range"
	case contentLength(hdr) >= 0 && contentLength(hdr) != r.Len():
		return "206 whose Content-Length does not match its Content-Range"
	}
	if _, ok := policy.StrongValidator(hdr); !ok {
		return "206 without strong validator"
	}
	return ""
}

// errPartLength: a 206 body whose length is not that of its range.
var errPartLength = errors.New("206 body length does not match Content-Range")

// combineParts returns the entry to store under key for a 206 (e, with
// its body): the part alone, or combined with the parts of the same
// representation stored there now (read again under the key's lock, so
// that parts fetched at the same time are all kept), a complete 200 when
// the parts cover the whole representation.
func (x *exchange) combineParts(ctx context.Context, key string, e *storage.Entry, body []byte) (*storage.Entry, error) {
	r, complete, _ := policy.ContentRange(e.Header.Get("Content-Range"))
	if int64(len(body)) != r.Len() {
		return nil, errPartLength
	}
	newest := []policy.Part{{Range: r, Data: body}}
	parts := newest
	base, err := x.h.get(ctx, key)
	if err == nil && base.Kind == storage.KindResponse && slices.Equal(base.Vary, e.Vary) &&
		policy.SameStrongValidator(base.Header, e.Header) {
		if ps, ok := partsOf(base); ok && ps.body != nil && ps.complete == complete {
			parts = append(parts, ps.parts()...) // the newest first: its bytes are kept
		}
	}
	merged := policy.MergeParts(parts)
	var total int64
	for _, p := range merged {
		total += p.Range.Len()
	}
	if len(merged) > maxParts || total > x.h.MaxEntrySize {
		merged = policy.MergeParts(newest)
	}
	return partEntry(e, merged, complete), nil
}

// partLocks serialise, within the process, the read-combine-write of the
// parts stored under a key (striped by key, as varyLocks).
var partLocks = func() (l [64]chan struct{}) {
	for i := range l {
		l[i] = make(chan struct{}, 1)
	}
	return l
}()

func lockParts(ctx context.Context, key string) (unlock func(), ok bool) {
	var sum uint32 = 2166136261 // FNV-1a
	for i := 0; i < len(key); i++ {
		sum = (sum ^ uint32(key[i])) * 16777619
	}
	l := partLocks[sum%uint32(len(partLocks))]
	select {
	case l <- struct{}{}:
		return func() { <-l }, true
	case <-ctx.Done():
		return nil, false
	}
}

// partEntry is e holding merged, the parts of a representation of
// complete bytes: a 206 entry, or a 200 when one part covers it all.
func partEntry(e *storage.Entry, merged []policy.Part, complete int64) *storage.Entry {
	out := *e
	out.Header = e.Header.Clone()
	delete(out.Header, "Content-Range")
	delete(out.Header, "Content-Length")
	if len(merged) == 1 && merged[0].Range.First == 0 && merged[0].Range.Last == complete-1 {
		out.Status = http.StatusOK
		out.Body = merged[0].Data
		out.Header["Content-Length"] = []string{strconv.FormatInt(complete, 10)}
		return &out
	}
	var n int64
	for _, p := range merged {
		n += p.Range.Len()
	}
	body := make([]byte, 0, n)
	cr := make([]string, len(merged))
	for i, p := range merged {
		body = append(body, p.Data...)
		cr[i] = policy.FormatContentRange(p.Range, complete)
	}
	out.Body = body
	out.Header["Content-Range"] = cr
	return &out
}
