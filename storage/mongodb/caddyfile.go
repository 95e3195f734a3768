package mongodb

import (
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddycache/caddy-cache/storage"
	"github.com/caddycache/caddy-cache/storage/internal/caddyopt"
	"github.com/caddycache/caddy-cache/storage/internal/mongoconn"
)

func unmarshalCaddyfile(d *caddyfile.Dispenser, m *MongoDB) error {
	d.Next() // backend name
	if d.NextArg() {
		m.URI = d.Val()
		if d.NextArg() {
			return d.Errf("mongodb storage: unexpected argument %q after the uri", d.Val())
		}
	}
	for d.NextBlock(0) {
		var err error
		switch d.Val() {
		case "uri":
			err = caddyopt.String(d, &m.URI)
		case "database":
			if err = caddyopt.String(d, &m.Database); err == nil {
				if e := mongoconn.CheckDatabaseName(m.Database); e != nil {
					err = d.Errf("database %q: %v", m.Database, e)
				}
			}
		case "collection":
			if err = caddyopt.String(d, &m.Collection); err == nil {
				if e := mongoconn.CheckCollectionName(m.Collection); e != nil {
					err = d.Errf("collection %q: %v", m.Collection, e)
				}
			}
		case "connect_timeout":
			err = caddyopt.Duration(d, &m.ConnectTimeout)
		case "sweep_interval":
			err = caddyopt.Duration(d, &m.SweepInterval)
		case "compression":
			if err = caddyopt.String(d, &m.Compression); err == nil {
				if _, e := storage.ParseCompression(m.Compression); e != nil {
					err = d.Errf("compression: %v", e)
				}
			}
		default:
			err = d.Errf("unrecognized mongodb storage option %q", d.Val())
		}
		if err != nil {
			return err
		}
	}
	if m.URI == "" {
		return d.Err("mongodb storage: uri is required (on the storage line or as the uri option)")
	}
	return nil
}
