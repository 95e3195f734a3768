# The two commands a newcomer needs:
#   make demo   Caddy with the cache in front of a small origin (Caddyfile.example)
#   make test   every test: installs the test servers it needs, go vet, go test -race
.PHONY: demo test deps vet bench fuzz

GO ?= go

demo:
	$(GO) run ./cmd/caddy run --config Caddyfile.example --adapter caddyfile

deps:
	bash scripts/test-deps.sh

vet:
	$(GO) vet ./...

test: deps vet
	$(GO) test -race -count=1 -timeout 30m ./...

# Hit-path micro benchmarks and the load benchmark (see bench/README.md).
bench:
	bash bench/run.sh

# Longer fuzzing of one target: make fuzz FUZZ=FuzzDecode PKG=./storage TIME=5m
fuzz:
	$(GO) test -run '^$$' -fuzz '^$(FUZZ)$$' -fuzztime $(or $(TIME),1m) $(PKG)
