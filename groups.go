package cache

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/dunglas/httpsfv"
	"go.uber.org/zap"
)

// HTTP Cache Groups (RFC 9875). A stored response whose Cache-Groups field
// names groups, e.g. `Cache-Groups: "product-42", "listings"`, belongs to
// those groups of its origin (scheme, host and port). A response to an
// unsafe request (POST, PUT, DELETE, PATCH…) with a 2xx or 3xx status
// whose Cache-Group-Invalidation field names groups removes every stored
// response of the same origin in any of them, as the RFC 9111 §4.4
// invalidation of the request's URL does, and through the same path as a
// purge (so that the hot tiers of other instances on the store drop them
// too). The admin API and `caddy cache purge --group` purge a group too.
//
// Both fields are Structured Field Lists of Strings (RFC 8941): a field
// that does not parse as a List is ignored entirely, members that are not
// Strings (tokens, numbers, inner lists) are ignored, parameters are
// ignored. Group names are compared case-sensitively, as the RFC says.
// Cache-Groups is forwarded to clients (downstream caches use it too).
//
// Groups are recorded among the entry's Tags, where the surrogate keys
// are, so that every backend that indexes tags indexes groups as well:
// each group as two tags, groupTagPrefix + origin + " " + name (the
// origin's group, for invalidation) and groupTagPrefix + "* " + name (for
// a purge of the group in every origin). Surrogate keys are split at
// spaces, so no surrogate key can ever hold a space: a tag starting with
// groupTagPrefix is a group, never a surrogate key.

// Limits on the groups of one response (RFC 9875 asks for at least 32
// groups of at least 32 characters); groups beyond them are ignored.
const (
	maxGroupsPerResponse = 32
	maxGroupNameLen      = 256
)

// groupTagPrefix starts the tags that record cache groups.
const groupTagPrefix = "cache-group "

// anyOrigin is the origin part of the tag that names a group in every
// origin; it is not an origin.
const anyOrigin = "*"

// parseGroups returns the group names of a Cache-Groups or
// Cache-Group-Invalidation field (its field lines), in order, without
// duplicates; nil when the field is absent or not a valid Structured
// Fields List.
func parseGroups(lines []string) []string {
	if len(lines) == 0 {
		return nil
	}
	list, err := httpsfv.UnmarshalList(lines)
	if err != nil {
		return nil
	}
	var out []string
	for _, m := range list {
		var v any
		switch it := m.(type) {
		case httpsfv.Item:
			v = it.Value
		case *httpsfv.Item:
			v = it.Value
		default:
			continue // an inner list
		}
		s, ok := v.(string)
		if !ok || s == "" || len(s) > maxGroupNameLen || slices.Contains(out, s) {
			continue
		}
		if len(out) == maxGroupsPerResponse {
			break
		}
		out = append(out, s)
	}
	return out
}

// groupTag is the tag that records group name of origin.
func groupTag(origin, name string) string {
	return groupTagPrefix + origin + " " + name
}

// groupTagsOf returns the tags that record the Cache-Groups of a response
// header for the response's origin.
func groupTagsOf(hdr http.Header, origin string) []string {
	names := parseGroups(hdr["Cache-Groups"])
	if len(names) == 0 || origin == "" {
		return nil
	}
	tags := make([]string, 0, 2*len(names))
	for _, n := range names {
		tags = append(tags, groupTag(origin, n), groupTag(anyOrigin, n))
	}
	return tags
}

// withGroups adds the group tags of a response to its surrogate keys; u is
// the response's URL as the key has it (scheme://authority/target).
func withGroups(tags []string, hdr http.Header, u string) []string {
	g := groupTagsOf(hdr, originOfURL(u))
	if len(g) == 0 {
		return tags
	}
	return append(tags, g...)
}

// originOfURL returns scheme://authority of a URL string, "" when it has
// none.
func originOfURL(u string) string {
	i := strings.Index(u, "://")
	if i < 0 {
		return ""
	}
	if j := strings.IndexAny(u[i+3:], "/?"); j >= 0 {
		return u[:i+3+j]
	}
	return u
}

// surrogateTags returns the tags that are surrogate keys (not groups).
func surrogateTags(tags []string) []string {
	var out []string
	for _, t := range tags {
		if !strings.HasPrefix(t, groupTagPrefix) {
			out = append(out, t)
		}
	}
	return out
}

// entryGroups returns the group names recorded in an entry's tags, in
// order (an entry has one origin).
func entryGroups(tags []string) []string {
	var out []string
	for _, t := range tags {
		rest, ok := strings.CutPrefix(t, groupTagPrefix)
		if !ok {
			continue
		}
		origin, name, _ := strings.Cut(rest, " ")
		if origin != anyOrigin && !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	return out
}

// normalizeOrigin checks and normalises an origin given to a purge:
// scheme://host[:port], lower-case, without a default port.
func normalizeOrigin(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "", fmt.Errorf("origin %q: want scheme://host[:port], e.g. https://example.com", raw)
	}
	scheme := strings.ToLower(u.Scheme)
	return scheme + "://" + normalizeHost(u.Host, scheme), nil
}

// groupOrigins returns the origins a purge of a group addresses: origin
// (normalised) and, when it has no port, the same host on the non-default
// listener ports this handler has seen (as a purge by URL does); or
// anyOrigin when origin is "".
func (h *Handler) groupOrigins(origin string) ([]string, error) {
	if origin == "" {
		return []string{anyOrigin}, nil
	}
	o, err := normalizeOrigin(origin)
	if err != nil {
		return nil, err
	}
	out := []string{o}
	u, _ := url.Parse(o)
	if u.Port() == "" && h.ports != nil {
		for _, p := range h.ports.list() {
			host := u.Hostname()
			if strings.IndexByte(host, ':') >= 0 {
				host = "[" + host + "]"
			}
			out = append(out, u.Scheme+"://"+host+":"+p)
		}
	}
	return out, nil
}

// groupKeys finds the responses stored in group name of the origins.
func (h *Handler) groupKeys(ctx context.Context, name string, origins []string, ks *keySet) error {
	for _, o := range origins {
		if err := h.tagKeys(ctx, groupTag(o, name), ks); err != nil {
			return err
		}
	}
	return nil
}

// announceGroup tells the other instances on the store to drop the hot
// copies of the responses in group name of the origins, and returns the
// last tag unannounced: the caller's own announcement carries it.
func (h *Handler) announceGroup(name string, origins []string) string {
	for _, o := range origins[1:] {
		h.announce(invalidation{Prefix: h.scope, Tag: groupTag(o, name)})
	}
	return groupTag(origins[0], name)
}

// invalidateGroups runs after a successful response to an unsafe request:
// the groups its Cache-Group-Invalidation names are invalidated in the
// request's origin (RFC 9875 §3).
func (h *Handler) invalidateGroups(ctx context.Context, r *http.Request, hdr http.Header) {
	names := parseGroups(hdr["Cache-Group-Invalidation"])
	if len(names) == 0 {
		return
	}
	u := h.effectiveURL(r)
	origin := strings.ToLower(u.Scheme) + "://" + u.Host
	for _, n := range names {
		var ks keySet
		err := h.groupKeys(ctx, n, []string{origin}, &ks)
		if err == nil {
			err = h.deleteKeys(ctx, &ks)
		}
		h.announce(invalidation{Prefix: h.scope, Tag: groupTag(origin, n)})
		h.countGroupInvalidation(groupSourceResponse)
		if err != nil {
			h.logger.Warn("invalidating a cache group failed", zap.String("group", n), zap.Error(err))
		}
	}
}

// quoteAll quotes each group name, as Cache-Groups writes them.
func quoteAll(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = strconv.Quote(n)
	}
	return out
}
