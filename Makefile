# The two commands a newcomer needs:
#   make demo   Caddy with the cache in front of a small origin (Caddyfile.example)
#   make test   every test: installs the test servers and tools it needs, checks
#               go.mod is tidy, runs go vet, golangci-lint and promtool on the
#               alert rules, then go test -race
.PHONY: demo test deps tidy vet lint rules bench fuzz

GO ?= go

demo:
	$(GO) run ./cmd/caddy run --config Caddyfile.example --adapter caddyfile

deps:
	bash scripts/test-deps.sh

# go.mod and go.sum must be what go mod tidy writes.
tidy:
	$(GO) mod tidy -diff

vet:
	$(GO) vet ./...

# .golangci.yml; the binary is the pinned version scripts/test-deps.sh builds.
lint: deps
	integration_test/servers/bin/golangci-lint run ./...
	integration_test/servers/bin/golangci-lint fmt --diff ./...

# The Prometheus alert rules next to the Grafana dashboard (promtool comes
# with the Debian package prometheus, installed by scripts/test-deps.sh).
rules: deps
	promtool check rules dashboards/alerts.yml

test: deps tidy vet lint rules
	$(GO) test -race -count=1 -timeout 30m ./...

# Every benchmark (see bench/README.md): hits against respond and
# reverse_proxy, fill time, RSS per entry and a million-entry SQLite; one
# summary table into bench/results.md, charts into bench/*.svg. About 40
# minutes on 2 CPUs. Parts only: make bench PARTS="load fill".
bench:
	bash bench/run.sh

# Longer fuzzing of one target: make fuzz FUZZ=FuzzDecode PKG=./storage TIME=5m
fuzz:
	$(GO) test -run '^$$' -fuzz '^$(FUZZ)$$' -fuzztime $(or $(TIME),1m) $(PKG)
