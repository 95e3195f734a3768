package cache

import (
	"mime"
	"net/http"
	"path"
	"strings"
)

// extensionTypes are the media types a response must have for a ttl rule
// whose pattern ends in that extension to give it a lifetime. A page served
// for /account;x.css (or /account/x.css, which many frameworks route to
// /account) is text/html: the *.css rule does not apply to it. A rule's
// content_types replace the row.
var extensionTypes = map[string][]string{
	"css":   {"text/css"},
	"js":    {"text/javascript", "application/javascript", "application/x-javascript", "application/ecmascript"},
	"mjs":   {"text/javascript", "application/javascript"},
	"json":  {"application/json", "application/*+json"},
	"map":   {"application/json"},
	"xml":   {"application/xml", "text/xml", "application/*+xml"},
	"txt":   {"text/plain"},
	"csv":   {"text/csv"},
	"html":  {"text/html"},
	"htm":   {"text/html"},
	"png":   {"image/png"},
	"jpg":   {"image/jpeg"},
	"jpeg":  {"image/jpeg"},
	"gif":   {"image/gif"},
	"webp":  {"image/webp"},
	"avif":  {"image/avif"},
	"svg":   {"image/svg+xml"},
	"ico":   {"image/x-icon", "image/vnd.microsoft.icon"},
	"bmp":   {"image/bmp"},
	"woff":  {"font/woff", "application/font-woff"},
	"woff2": {"font/woff2"},
	"ttf":   {"font/ttf", "application/x-font-ttf"},
	"otf":   {"font/otf"},
	"eot":   {"application/vnd.ms-fontobject"},
	"mp4":   {"video/mp4"},
	"webm":  {"video/webm", "audio/webm"},
	"mp3":   {"audio/mpeg"},
	"ogg":   {"audio/ogg", "video/ogg"},
	"wasm":  {"application/wasm"},
	"pdf":   {"application/pdf"},
	"zip":   {"application/zip"},
	"gz":    {"application/gzip", "application/x-gzip"},
}

// extension returns the extension a rule's pattern ends in ("css" for
// "*.css" or "/static/*.css"), or "".
func (r *TTLRule) extension() string {
	last := r.Match[strings.LastIndexByte(r.Match, '/')+1:]
	i := strings.LastIndexByte(last, '.')
	if i < 0 {
		return ""
	}
	ext := strings.ToLower(last[i+1:])
	if ext == "" || strings.ContainsAny(ext, "*?") {
		return ""
	}
	return ext
}

// typeAllowed reports whether a response of this Content-Type may take the
// rule's lifetime.
func (r *TTLRule) typeAllowed(contentType string) bool {
	types := r.ContentTypes
	if len(types) == 0 {
		types = extensionTypes[r.extension()]
	}
	if len(types) == 0 {
		return true
	}
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return false // none or unreadable: not what the extension promises
	}
	for _, t := range types {
		if ok, _ := path.Match(strings.ToLower(t), mt); ok {
			return true
		}
	}
	return false
}

// credentialed reports whether a request carried Cookie or Authorization:
// its response is presumed personal unless the origin says public.
func credentialed(reqHdr http.Header) bool {
	return len(reqHdr["Cookie"]) > 0 || len(reqHdr["Authorization"]) > 0
}
