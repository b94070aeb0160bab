package hearsay_test

import (
	"testing"
	"time"

	"github.com/hearsay-ha/hearsay/bindings/go/hearsay"
)

// The anchor: the cheapest call into the library (a static string), measured the same way.
// `go test -bench . -run ^$` prints both; ShouldNotify's ns/op over the anchor's is the
// cost of a dedup decision from Go in units of one cgo round trip.
func BenchmarkCgoAnchor(b *testing.B) {
	for i := 0; i < b.N; i++ {
		_ = hearsay.Version()
	}
}

func BenchmarkShouldNotify(b *testing.B) {
	n, err := hearsay.Start(hearsay.Config{BindAddr: "127.0.0.1:0"})
	if err != nil {
		b.Fatal(err)
	}
	defer n.Close()
	flush := hearsay.Flush{
		Receiver:       hearsay.Receiver{Name: "team-db", Integration: "webhook"},
		GroupKey:       `{}:{alertname="DiskFull"}`,
		Firing:         []uint64{hearsay.AlertHash(alert)},
		SendResolved:   true,
		RepeatInterval: 4 * time.Hour,
		Now:            time.Now(),
	}
	if _, err := n.LogNotification(flush); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if d, err := n.ShouldNotify(flush); err != nil || d.Notify {
			b.Fatal(d, err)
		}
	}
}
