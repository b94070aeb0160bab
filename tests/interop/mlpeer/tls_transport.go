//go:build amtls

// Alertmanager's TLS transport (cluster.NewTLSTransport, --cluster.tls-config)
// under the bench's nodes: `mlpeer-amtls bench -tls-config FILE` measures an
// Alertmanager TLS cluster's broadcast rate the same way as the UDP bench.
// Built only by build.sh's third binary (tag amtls, go.mod), so the
// v0.5.0 build does not need Alertmanager's module.
package main

import (
	"context"
	"io"
	"log/slog"

	"github.com/hashicorp/memberlist"
	"github.com/prometheus/alertmanager/cluster"
	"github.com/prometheus/client_golang/prometheus"
)

func init() {
	tlsTransport = func(configFile, host string) (memberlist.Transport, int, error) {
		cfg, err := cluster.GetTLSTransportConfig(configFile)
		if err != nil {
			return nil, 0, err
		}
		logger := slog.New(slog.NewTextHandler(io.Discard, nil))
		t, err := cluster.NewTLSTransport(context.Background(), logger, prometheus.NewRegistry(), host, 0, cfg)
		if err != nil {
			return nil, 0, err
		}
		return t, t.GetAutoBindPort(), nil
	}
}
