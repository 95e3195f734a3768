package cache

import (
	"net/http"
	"strconv"
)

// statusMember is this cache's member of Cache-Status (RFC 9211 §2): the
// cache's name and its parameters, written in one order everywhere.
type statusMember struct {
	hit       bool
	fwd       string // forward reason (RFC 9211 §2.2), "" on a hit
	fwdStatus int    // status of the forwarded request's response, 0 if none
	stored    bool
	hasTTL    bool
	ttl       int64 // seconds of freshness left; negative when stale
	detail    string
}

func hitMember(ttl int64, detail string) statusMember {
	return statusMember{hit: true, hasTTL: true, ttl: ttl, detail: detail}
}

func fwdMember(fwd, detail string) statusMember {
	return statusMember{fwd: fwd, detail: detail}
}

// withTTL returns m with the ttl parameter.
func (m statusMember) withTTL(ttl int64) statusMember {
	m.hasTTL, m.ttl = true, ttl
	return m
}

// format writes the member for the cache named name.
func (m statusMember) format(name string) string {
	var buf [128]byte // on the stack: the string is the one allocation
	b := append(buf[:0], name...)
	if m.hit {
		b = append(b, "; hit"...)
	}
	if m.fwd != "" {
		b = append(b, "; fwd="...)
		b = append(b, m.fwd...)
	}
	if m.fwdStatus != 0 {
		b = append(b, "; fwd-status="...)
		b = strconv.AppendInt(b, int64(m.fwdStatus), 10)
	}
	if m.stored {
		b = append(b, "; stored"...)
	}
	if m.hasTTL {
		b = append(b, "; ttl="...)
		b = strconv.AppendInt(b, m.ttl, 10)
	}
	if m.detail != "" {
		b = append(b, "; detail="...)
		b = strconv.AppendQuote(b, m.detail)
	}
	return string(b)
}

// member formats m with this handler's cache name.
func (h *Handler) member(m statusMember) string { return m.format(h.StatusHeader) }

// setCacheStatus makes m the response's only Cache-Status member: for
// responses that did not come from a cache upstream (bypass, 504).
func (h *Handler) setCacheStatus(hdr http.Header, m statusMember) {
	hdr["Cache-Status"] = []string{h.member(m)}
}

// addCacheStatus appends this cache's member to the Cache-Status the
// response already carries from caches upstream (RFC 9211 §2: each cache
// adds its own member, after those of the caches before it). The values
// are copied, as a handler before the cache may share them. slot, when it
// has room, is a fresh slice the member goes into when there are none
// upstream.
func addCacheStatus(hdr http.Header, member string, slot []string) {
	up := hdr["Cache-Status"]
	if len(up) == 0 && cap(slot) > 0 {
		slot = slot[:1:1]
		slot[0] = member
		hdr["Cache-Status"] = slot
		return
	}
	v := make([]string, 0, len(up)+1)
	v = append(v, up...)
	hdr["Cache-Status"] = append(v, member)
}
