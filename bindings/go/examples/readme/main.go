// Alertmanager's own silences on a hearsay node, as Alertmanager's main wires them to its
// cluster peer: run it twice, the second with -cluster.peer set to the first's address, and
// each node prints the silence the other created.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/alertmanager/silence"
	"github.com/prometheus/alertmanager/silence/silencepb"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/hearsay-ha/hearsay/bindings/go/hearsay"
)

func main() {
	listen := flag.String("cluster.listen-address", "0.0.0.0:9094", "gossip ip:port")
	peer := flag.String("cluster.peer", "", "a peer to join, host:port")
	flag.Parse()

	cfg := hearsay.Config{BindAddr: *listen}
	if *peer != "" {
		cfg.Peers = []string{*peer}
	}
	node, err := hearsay.Start(cfg)
	if err != nil {
		log.Fatal(err)
	}
	defer node.Close()
	fmt.Printf("node %s at %s\n", node.Name(), node.Address())

	reg := prometheus.NewRegistry()
	silences, err := silence.New(silence.Options{Retention: 120 * time.Hour, Metrics: reg})
	if err != nil {
		log.Fatal(err)
	}
	// Alertmanager's key for its silences: the host's keys win over hearsay's own.
	channel, err := node.AddState("sil", silences, reg)
	if err != nil {
		log.Fatal(err)
	}
	silences.SetBroadcast(channel.Broadcast)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := node.WaitReady(ctx); err != nil {
		log.Fatal(err)
	}
	now := time.Now()
	err = silences.Set(ctx, &silencepb.Silence{
		Matchers:  []*silencepb.Matcher{{Type: silencepb.Matcher_EQUAL, Name: "alertname", Pattern: "DiskFull"}},
		StartsAt:  timestamppb.New(now),
		EndsAt:    timestamppb.New(now.Add(time.Hour)),
		CreatedBy: node.Name(),
		Comment:   "maintenance",
	})
	if err != nil {
		log.Fatal(err)
	}

	seen := map[string]bool{}
	for ctx.Err() == nil {
		active, _, _ := silences.Query(ctx, silence.QState(silence.SilenceStateActive))
		for _, s := range active {
			if !seen[s.Id] {
				seen[s.Id] = true
				fmt.Printf("silence %s by %s\n", s.Id, s.CreatedBy)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
}
