// Command caddy is Caddy with its standard modules and the cache handler
// with every storage backend.
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/caddycache/caddy-cache"
)

func main() {
	caddycmd.Main()
}
