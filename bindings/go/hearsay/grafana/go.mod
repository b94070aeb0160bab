module github.com/hearsay-ha/hearsay/bindings/go/hearsay/grafana

go 1.22

require (
	github.com/hearsay-ha/hearsay/bindings/go/hearsay v0.0.0
	// Grafana's go.mod replaces this module with its fork, whose cluster package has the
	// shapes this adapter implements.
	github.com/prometheus/alertmanager v0.35.0
	github.com/prometheus/client_golang v1.22.0
)

require (
	github.com/beorn7/perks v1.0.1 // indirect
	github.com/cespare/xxhash/v2 v2.3.0 // indirect
	github.com/munnerz/goautoneg v0.0.0-20191010083416-a7dc8b61c822 // indirect
	github.com/prometheus/client_model v0.6.1 // indirect
	github.com/prometheus/common v0.62.0 // indirect
	github.com/prometheus/procfs v0.15.1 // indirect
	golang.org/x/sys v0.30.0 // indirect
	google.golang.org/protobuf v1.36.5 // indirect
)

replace (
	// The core from this checkout; a user's `go get` takes the published module instead.
	github.com/hearsay-ha/hearsay/bindings/go/hearsay => ../
	// In this repository, the fork's shapes come from the interface replica, as Grafana's
	// replace brings in the fork.
	github.com/prometheus/alertmanager => ../../replica/alertmanager
)
