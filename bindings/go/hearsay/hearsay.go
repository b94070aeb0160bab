// Package hearsay runs a hearsay node from Go: the high-availability core of an alerting
// system (memberlist-compatible gossip, Alertmanager's notification log and silences) in a
// Rust library reached through its C ABI.
//
// Go states (Alertmanager's and Grafana's silences, notification logs, ...) ride on a *Node
// through AddState, which returns an error when it cannot register one. The interface shapes
// servers program against are in sub-packages, so that this one needs only the standard
// library and client_golang: hearsay/alertmanager implements upstream Alertmanager's
// cluster.ClusterPeer, hearsay/grafana Grafana's notify.ClusterPeer. hearsay's native states
// are reached with ShouldNotify, LogNotification, SetSilence, ExpireSilence and Mutes, and a
// Grafana organisation's (Config.Orgs) with the same methods on Node.Org(id), which adds the
// flush log's LogFlush, FlushTime and DeleteFlush.
//
// How the package finds the library is in cgo.go alone.
package hearsay

/*
#include <stdlib.h>
#include "hearsay.h"
*/
import "C"

import (
	"context"
	"errors"
	"log/slog"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"
	"unsafe"
)

// Version is the library's version.
func Version() string { v := C.hs_version(); return C.GoStringN(v.data, C.int(v.len)) }

// Config says how a node starts. Zero fields take Alertmanager's defaults, or with
// GrafanaConfigFile what that file says; fields set here override the file.
type Config struct {
	// GrafanaConfigFile names Grafana's configuration file (grafana.ini or custom.ini): its
	// [unified_alerting] section is read with Grafana's rules (GF_UNIFIED_ALERTING_<KEY>
	// variables of this process override it; ${VAR}, $__env{VAR} and $__file{path} are
	// expanded) and sets what its ha_* keys mirror, Redis mode included (ha_redis_address).
	// A bad value is ErrInvalidConfig naming the key and its line; an unreadable file, ErrIO.
	GrafanaConfigFile string
	// Name, unique in the cluster (--cluster.peer-name). Default: a random ULID.
	Name string
	// BindAddr is ip:port for UDP and TCP (--cluster.listen-address). Default 0.0.0.0:9094;
	// port 0 picks a free port.
	BindAddr string
	// AdvertiseAddr is the ip:port peers use (--cluster.advertise-address).
	AdvertiseAddr string
	// Peers to join and keep re-resolving, host:port (--cluster.peer).
	Peers []string
	// Label every packet carries; other labels are ignored (--cluster.label).
	Label string
	// GossipInterval (--cluster.gossip-interval, 200ms).
	GossipInterval time.Duration
	// PushPullInterval (--cluster.pushpull-interval, 1m).
	PushPullInterval time.Duration
	// SettleTimeout bounds WaitReady (--cluster.settle-timeout, 1m).
	SettleTimeout time.Duration
	// StorageDir holds the nflog and silences snapshots in Alertmanager's format
	// (--storage.path). Empty: nothing is written.
	StorageDir string
	// Retention of notification-log entries and expired silences (--data.retention, 120h).
	Retention time.Duration
	// MaintenanceInterval between GC + snapshot runs (--data.maintenance-interval, 15m).
	MaintenanceInterval time.Duration
	// RedisURL (redis://host:port/db, rediss://... for TLS) runs the node on Redis in
	// Grafana's layout instead of gossip (ha_redis_address); BindAddr, AdvertiseAddr, Peers
	// and Label are then unused.
	RedisURL string
	// RedisPrefix is ha_redis_prefix (a ':' is appended unless empty).
	RedisPrefix string
	// ClusterTLSConfigFile names Alertmanager's TLS transport file (--cluster.tls-config):
	// tls_server_config and tls_client_config, paths relative to the file. Gossip then runs
	// over TLS on TCP only, with peers configured alike. Empty: plain memberlist.
	ClusterTLSConfigFile string
	// SecretKeys are AES-GCM keys of 16, 24 or 32 bytes encrypting every packet and stream,
	// byte-compatible with memberlist's Config.SecretKey / Keyring: the first is the primary,
	// which encrypts; all decrypt. Default none (no encryption), at most 32. Alertmanager has
	// no flag for it. Rotate while running with AddKey, UseKey and RemoveKey.
	SecretKeys [][]byte
	// GossipVerifyIncoming is memberlist's GossipVerifyIncoming: with keys, drop what does not
	// decrypt and refuse plain streams. nil means the default, true; set false while rolling
	// encryption into a running cluster.
	GossipVerifyIncoming *bool
	// GossipVerifyOutgoing is memberlist's GossipVerifyOutgoing: with keys, encrypt
	// everything sent. nil means the default, true.
	GossipVerifyOutgoing *bool
	// RedisUsername is ha_redis_username: the ACL user to AUTH as. Empty: the URL's, if any.
	RedisUsername string
	// RedisPassword is ha_redis_password. Empty: the URL's, if any; no password, no AUTH.
	RedisPassword string
	// RedisDB is ha_redis_db, the database SELECTed. Nil: the URL's path, else 0.
	RedisDB *int
	// RedisTLS turns TLS to Redis on (ha_redis_tls_enabled), also for a redis:// URL.
	// Nil: plain TCP, unless the URL is rediss:// (then TLS with the system roots).
	RedisTLS *RedisTLSConfig
	// RedisSentinel turns Redis Sentinel on (ha_redis_sentinel_mode_enabled): the master is
	// learnt from the Sentinels and followed through failovers. RedisURL is still required:
	// its scheme and database apply to the master, its host is unused. Nil: RedisURL's server.
	RedisSentinel *RedisSentinelConfig
	// RedisCluster turns Redis Cluster on (ha_redis_cluster_mode_enabled): the host:port of
	// cluster nodes to read the slot map from (ha_redis_address in Cluster mode); keys go to
	// the master owning their slot. RedisURL is still required: its scheme and credentials
	// apply, its host is unused. Empty: RedisURL's server. Exclusive with RedisSentinel.
	RedisCluster []string
	// Orgs are the Grafana organisations whose native states the node carries, as Grafana's
	// per-organisation Alertmanagers register them on their shared peer:
	// notificationlog:<org> and silences:<org> each (snapshot files nflog:<org> and
	// silences:<org> in StorageDir). Reach them with Node.Org(id). Empty: Alertmanager's nfl
	// and sil, which the Node's own ShouldNotify, SetSilence, ... use. Each at most once.
	Orgs []int64
	// FlushLog adds flushlog:<org> to every organisation (file flushlog:<org>), as Grafana's
	// alertingSyncDispatchTimer feature toggle does. Unused without Orgs.
	FlushLog bool
	// NativeKeys moves hearsay's native states off their keys: a native key ("nfl", "sil",
	// "notificationlog:<org>", "silences:<org>", "flushlog:<org>") → the key to carry that
	// state under instead, or "" to leave it out. A host's AddState of a native key takes the
	// key anyway (switching the native state off); moving it first keeps both. The Node's and
	// Org's methods follow the move; a moved state keeps its snapshot file. A key not in the
	// layout, or two states on one key, is ErrInvalidConfig from Start. Default: none moved.
	NativeKeys map[string]string
	// Logger takes the binding's own log lines (a native state switched off by AddState).
	// Nil: slog.Default().
	Logger *slog.Logger
}

// RedisSentinelConfig holds Grafana's ha_redis_sentinel_* keys.
type RedisSentinelConfig struct {
	// MasterName (ha_redis_sentinel_master_name) is the master as the Sentinels know it.
	MasterName string
	// Addrs are the Sentinels' host:port (ha_redis_address in Sentinel mode), tried in turn.
	Addrs []string
	// Username and Password (ha_redis_sentinel_username, _password) are the Sentinels' own;
	// empty: none. The master takes RedisUsername and RedisPassword.
	Username string
	Password string
}

// RedisTLSConfig holds Grafana's ha_redis_tls_* keys. Empty fields take the defaults.
type RedisTLSConfig struct {
	// CAFile (ha_redis_tls_ca_path): PEM bundle the server must chain to. Default: system roots.
	CAFile string
	// CertFile and KeyFile (ha_redis_tls_cert_path, ha_redis_tls_key_path): our certificate
	// for mutual TLS, both or neither.
	CertFile string
	KeyFile  string
	// ServerName (ha_redis_tls_server_name) to verify and send as SNI. Default: the URL's host.
	ServerName string
	// InsecureSkipVerify (ha_redis_tls_insecure_skip_verify) accepts any server certificate.
	InsecureSkipVerify bool
	// MinVersion (ha_redis_tls_min_version): "VersionTLS12" (default) or "VersionTLS13".
	MinVersion string
	// CipherSuites (ha_redis_tls_cipher_suites): TLS 1.2 suites by IANA name. Default: rustls'.
	CipherSuites []string
}

// Node is a running hearsay peer. Its methods are safe for concurrent use. Close it when done.
type Node struct {
	mu  sync.RWMutex // read: a call in flight; write: Close
	ptr *C.hs_node

	// nativeKeys is Config.NativeKeys, for the keys the Node's and Org's methods act on.
	nativeKeys map[string]string
	logger     *slog.Logger

	states statesLoop
	once   sync.Once
}

// str borrows a Go string as an hs_str for one call; the pinner keeps its bytes in place.
func str(p *runtime.Pinner, s string) C.hs_str {
	if len(s) == 0 {
		return C.hs_str{}
	}
	data := unsafe.StringData(s)
	p.Pin(data)
	return C.hs_str{data: (*C.char)(unsafe.Pointer(data)), len: C.size_t(len(s))}
}

func millis(d time.Duration) C.uint64_t { return C.uint64_t(d / time.Millisecond) }

// timeoutMs converts a context's remaining time (capped at step) to milliseconds.
func timeoutMs(ctx context.Context, step time.Duration) C.uint32_t {
	wait := step
	if deadline, ok := ctx.Deadline(); ok {
		if left := time.Until(deadline); left < wait {
			wait = left
		}
	}
	if wait < 0 {
		wait = 0
	}
	return C.uint32_t(wait / time.Millisecond)
}

// Start loads the snapshots (with a StorageDir), binds, and starts a node; it joins
// cfg.Peers in the background.
func Start(cfg Config) (*Node, error) {
	var p runtime.Pinner
	defer p.Unpin()
	var config *C.hs_config
	if err := call(func() C.hs_result { return C.hs_config_new(&config) }); err != nil {
		return nil, err
	}
	defer C.hs_config_free(config)
	steps := []func() C.hs_result{}
	if cfg.GrafanaConfigFile != "" {
		// First, so that every other field given overrides the file.
		steps = append(steps, func() C.hs_result {
			return C.hs_config_load_grafana_ini(config, str(&p, cfg.GrafanaConfigFile))
		})
	}
	if cfg.Name != "" {
		steps = append(steps, func() C.hs_result { return C.hs_config_set_name(config, str(&p, cfg.Name)) })
	}
	if cfg.BindAddr != "" {
		steps = append(steps, func() C.hs_result { return C.hs_config_set_bind_address(config, str(&p, cfg.BindAddr)) })
	}
	if cfg.AdvertiseAddr != "" {
		steps = append(steps, func() C.hs_result {
			return C.hs_config_set_advertise_address(config, str(&p, cfg.AdvertiseAddr))
		})
	}
	for _, peer := range cfg.Peers {
		steps = append(steps, func() C.hs_result { return C.hs_config_add_peer(config, str(&p, peer)) })
	}
	if cfg.Label != "" {
		steps = append(steps, func() C.hs_result { return C.hs_config_set_label(config, str(&p, cfg.Label)) })
	}
	if cfg.RedisURL != "" {
		steps = append(steps, func() C.hs_result {
			return C.hs_config_set_redis(config, str(&p, cfg.RedisURL), str(&p, cfg.RedisPrefix))
		})
	}
	steps = append(steps, redisSteps(&p, config, &cfg)...)
	for _, org := range cfg.Orgs {
		steps = append(steps, func() C.hs_result { return C.hs_config_add_org(config, C.int64_t(org)) })
	}
	if cfg.FlushLog {
		steps = append(steps, func() C.hs_result { return C.hs_config_set_flush_log(config, true) })
	}
	steps = append(steps, nativeKeySteps(&p, config, cfg.NativeKeys)...)
	if cfg.StorageDir != "" {
		steps = append(steps, func() C.hs_result { return C.hs_config_set_storage_dir(config, str(&p, cfg.StorageDir)) })
	}
	for _, key := range cfg.SecretKeys {
		steps = append(steps, func() C.hs_result {
			return C.hs_config_add_key(config, bytesPtr(&p, key), C.size_t(len(key)))
		})
	}
	if v := cfg.GossipVerifyIncoming; v != nil {
		steps = append(steps, func() C.hs_result { return C.hs_config_set_gossip_verify_incoming(config, C.bool(*v)) })
	}
	if v := cfg.GossipVerifyOutgoing; v != nil {
		steps = append(steps, func() C.hs_result { return C.hs_config_set_gossip_verify_outgoing(config, C.bool(*v)) })
	}
	if cfg.ClusterTLSConfigFile != "" {
		steps = append(steps, func() C.hs_result {
			return C.hs_config_set_cluster_tls_config_file(config, str(&p, cfg.ClusterTLSConfigFile))
		})
	}
	durations := []struct {
		d   time.Duration
		set func(*C.hs_config, C.uint64_t) C.hs_result
	}{
		{cfg.GossipInterval, func(c *C.hs_config, ms C.uint64_t) C.hs_result { return C.hs_config_set_gossip_interval_ms(c, ms) }},
		{cfg.PushPullInterval, func(c *C.hs_config, ms C.uint64_t) C.hs_result { return C.hs_config_set_push_pull_interval_ms(c, ms) }},
		{cfg.SettleTimeout, func(c *C.hs_config, ms C.uint64_t) C.hs_result { return C.hs_config_set_settle_timeout_ms(c, ms) }},
		{cfg.Retention, func(c *C.hs_config, ms C.uint64_t) C.hs_result { return C.hs_config_set_retention_ms(c, ms) }},
		{cfg.MaintenanceInterval, func(c *C.hs_config, ms C.uint64_t) C.hs_result {
			return C.hs_config_set_maintenance_interval_ms(c, ms)
		}},
	}
	for _, d := range durations {
		if d.d != 0 {
			steps = append(steps, func() C.hs_result { return d.set(config, millis(d.d)) })
		}
	}
	for _, step := range steps {
		if err := call(step); err != nil {
			return nil, err
		}
	}
	var node *C.hs_node
	if err := call(func() C.hs_result { return C.hs_node_start(config, &node) }); err != nil {
		return nil, err
	}
	n := &Node{ptr: node, nativeKeys: map[string]string{}, logger: cfg.Logger}
	for from, to := range cfg.NativeKeys {
		n.nativeKeys[from] = to
	}
	if n.logger == nil {
		n.logger = slog.Default()
	}
	n.states.init(n)
	return n, nil
}

// Logger is where the binding's own lines go (Config.Logger, or slog.Default()).
func (n *Node) Logger() *slog.Logger { return n.logger }

// nativeKeySteps are the calls that move or switch off native states, in key order so that
// an error names the same key every time.
func nativeKeySteps(p *runtime.Pinner, config *C.hs_config, moves map[string]string) []func() C.hs_result {
	from := make([]string, 0, len(moves))
	for k := range moves {
		from = append(from, k)
	}
	sort.Strings(from)
	steps := make([]func() C.hs_result, 0, len(from))
	for _, k := range from {
		to := moves[k]
		steps = append(steps, func() C.hs_result {
			if to == "" {
				return C.hs_config_switch_off_state(config, str(p, k))
			}
			return C.hs_config_set_state_key(config, str(p, k), str(p, to))
		})
	}
	return steps
}

// nativeKey is where the native state of layout key k is: moved by Config.NativeKeys, or k.
// A state switched off there is looked for under k, which then has none.
func (n *Node) nativeKey(k string) string {
	if to, ok := n.nativeKeys[k]; ok && to != "" {
		return to
	}
	return k
}

// redisSteps are the calls that carry cfg's Redis credentials, database and TLS settings.
func redisSteps(p *runtime.Pinner, config *C.hs_config, cfg *Config) []func() C.hs_result {
	var steps []func() C.hs_result
	if cfg.RedisUsername != "" || cfg.RedisPassword != "" {
		steps = append(steps, func() C.hs_result {
			return C.hs_config_set_redis_auth(config, str(p, cfg.RedisUsername), str(p, cfg.RedisPassword))
		})
	}
	if cfg.RedisDB != nil {
		steps = append(steps, func() C.hs_result { return C.hs_config_set_redis_db(config, C.int64_t(*cfg.RedisDB)) })
	}
	if st := cfg.RedisSentinel; st != nil {
		addrs := strings.Join(st.Addrs, ",")
		steps = append(steps, func() C.hs_result {
			return C.hs_config_set_redis_sentinel(config, str(p, st.MasterName), str(p, addrs),
				str(p, st.Username), str(p, st.Password))
		})
	}
	if len(cfg.RedisCluster) > 0 {
		addrs := strings.Join(cfg.RedisCluster, ",")
		steps = append(steps, func() C.hs_result { return C.hs_config_set_redis_cluster(config, str(p, addrs)) })
	}
	if t := cfg.RedisTLS; t != nil {
		steps = append(steps, func() C.hs_result {
			return C.hs_config_set_redis_tls(config, str(p, t.CAFile), str(p, t.CertFile), str(p, t.KeyFile),
				str(p, t.ServerName), C.bool(t.InsecureSkipVerify))
		})
		if t.MinVersion != "" || len(t.CipherSuites) > 0 {
			suites := strings.Join(t.CipherSuites, ",")
			steps = append(steps, func() C.hs_result {
				return C.hs_config_set_redis_tls_options(config, str(p, t.MinVersion), str(p, suites))
			})
		}
	}
	return steps
}

// with runs f on the live node, or returns ErrClosed.
func (n *Node) with(f func(*C.hs_node) C.hs_result) error {
	n.mu.RLock()
	defer n.mu.RUnlock()
	if n.ptr == nil {
		return ErrClosed
	}
	return call(func() C.hs_result { return f(n.ptr) })
}

// text reads a string the C side copies into a buffer, growing it as told.
func (n *Node) text(f func(*C.hs_node, *C.char, C.size_t, *C.size_t) C.hs_result) (string, error) {
	buf := make([]byte, 256)
	for {
		var need C.size_t
		err := n.with(func(node *C.hs_node) C.hs_result {
			return f(node, (*C.char)(unsafe.Pointer(&buf[0])), C.size_t(len(buf)), &need)
		})
		if errors.Is(err, ErrBufferTooSmall) {
			buf = make([]byte, int(need)+256)
			continue
		}
		if err != nil {
			return "", err
		}
		return string(buf[:need]), nil
	}
}

// Close stops the node: its threads end and the snapshots are written once more. It does
// not leave the cluster (call Leave first). Safe to call more than once.
func (n *Node) Close() error {
	n.once.Do(func() {
		n.states.stop()
		n.mu.Lock()
		C.hs_node_free(n.ptr)
		n.ptr = nil
		n.mu.Unlock()
	})
	return nil
}

// Join push/pulls with peer (host:port) and returns how many of its addresses answered.
func (n *Node) Join(ctx context.Context, peer string) (int, error) {
	var p runtime.Pinner
	defer p.Unpin()
	var joined C.size_t
	err := n.with(func(node *C.hs_node) C.hs_result {
		return C.hs_node_join(node, str(&p, peer), timeoutMs(ctx, time.Hour), &joined)
	})
	return int(joined), err
}

// Leave tells the cluster this node leaves and waits until the message went out, or ctx
// ends. The node keeps running until closed.
func (n *Node) Leave(ctx context.Context) error {
	return n.with(func(node *C.hs_node) C.hs_result { return C.hs_node_leave(node, timeoutMs(ctx, time.Hour)) })
}

// AddKey installs an encryption key (16, 24 or 32 bytes) for decryption, as memberlist's
// Keyring.AddKey; it encrypts only after UseKey. ErrInvalidArgument for a bad length or a
// node started without SecretKeys.
func (n *Node) AddKey(key []byte) error { return n.keyring(key, keyAdd) }

// UseKey makes an installed key the primary, which encrypts everything sent from now on
// (memberlist's Keyring.UseKey). ErrInvalidArgument when it is not installed.
func (n *Node) UseKey(key []byte) error { return n.keyring(key, keyUse) }

// RemoveKey uninstalls a key (memberlist's Keyring.RemoveKey); the primary is refused with
// ErrInvalidArgument. A key that is not installed is no error.
func (n *Node) RemoveKey(key []byte) error { return n.keyring(key, keyRemove) }

type keyOp int

const (
	keyAdd keyOp = iota
	keyUse
	keyRemove
)

func (n *Node) keyring(key []byte, op keyOp) error {
	var p runtime.Pinner
	defer p.Unpin()
	return n.with(func(node *C.hs_node) C.hs_result {
		data, size := bytesPtr(&p, key), C.size_t(len(key))
		switch op {
		case keyAdd:
			return C.hs_node_add_key(node, data, size)
		case keyUse:
			return C.hs_node_use_key(node, data, size)
		default:
			return C.hs_node_remove_key(node, data, size)
		}
	})
}

// Name is the node's name in the cluster.
func (n *Node) Name() string {
	s, _ := n.text(func(node *C.hs_node, b *C.char, c C.size_t, l *C.size_t) C.hs_result {
		return C.hs_node_name(node, b, c, l)
	})
	return s
}

// Address is the ip:port the node advertises.
func (n *Node) Address() string {
	s, _ := n.text(func(node *C.hs_node, b *C.char, c C.size_t, l *C.size_t) C.hs_result {
		return C.hs_node_address(node, b, c, l)
	})
	return s
}

// Standing is where the node stands among its peers.
type Standing struct {
	// Index among alive and suspect members sorted by name: the node waits
	// Index × peer timeout before notifying.
	Index int
	// Visible members, this node included.
	Visible int
	// Blind: the node sees nobody although peers are configured or were seen, so Index 0
	// means "cut off", not "first".
	Blind bool
}

// Standing reports the node's position with its context.
func (n *Node) Standing() (Standing, error) {
	var pos C.hs_position
	err := n.with(func(node *C.hs_node) C.hs_result { return C.hs_node_position(node, &pos) })
	return Standing{Index: int(pos.index), Visible: int(pos.visible), Blind: bool(pos.blind)}, err
}

// Position is the node's index among the members sorted by name (Alertmanager's and
// Grafana's Position): it waits Position × peer timeout before notifying. 0 on a closed node.
func (n *Node) Position() int {
	s, _ := n.Standing()
	return s.Index
}

// WaitReady waits until the node has settled (the member count held still for three polls,
// or the settle timeout passed), or ctx ends.
func (n *Node) WaitReady(ctx context.Context) error {
	for {
		err := n.with(func(node *C.hs_node) C.hs_result {
			return C.hs_node_wait_ready(node, timeoutMs(ctx, 100*time.Millisecond))
		})
		if !errors.Is(err, ErrTimeout) {
			return err // nil once ready
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

// Ready reports whether the node has settled.
func (n *Node) Ready() bool {
	var ready C.bool
	err := n.with(func(node *C.hs_node) C.hs_result { return C.hs_node_is_ready(node, &ready) })
	return err == nil && bool(ready)
}

// Status is "ready" once settled and "settling" before, as Alertmanager reports it.
func (n *Node) Status() string {
	if n.Ready() {
		return "ready"
	}
	return "settling"
}

// Member is a peer as Alertmanager's cluster.ClusterMember shows it.
type Member struct {
	name, address string
}

// Name of the member.
func (m Member) Name() string { return m.name }

// Address of the member (ip:port).
func (m Member) Address() string { return m.address }

// Members lists the alive and suspect members, this node included, sorted by name.
func (n *Node) Members() ([]Member, error) {
	var members []Member
	err := n.with(func(node *C.hs_node) C.hs_result {
		var list *C.hs_members
		if r := C.hs_node_members(node, &list); r != C.HS_RESULT_OK {
			return r
		}
		defer C.hs_members_free(list)
		var array *C.hs_member
		var count C.size_t
		if r := C.hs_members_array(list, &array, &count); r != C.HS_RESULT_OK {
			return r
		}
		for _, m := range unsafe.Slice(array, int(count)) {
			members = append(members, Member{
				name:    C.GoStringN(m.name.data, C.int(m.name.len)),
				address: C.GoStringN(m.address.data, C.int(m.address.len)),
			})
		}
		return C.HS_RESULT_OK
	})
	if err != nil {
		return nil, err
	}
	return members, nil
}

// Metrics is the node's metrics in the Prometheus text format (Alertmanager's names).
func (n *Node) Metrics() (string, error) {
	return n.text(func(node *C.hs_node, b *C.char, c C.size_t, l *C.size_t) C.hs_result {
		return C.hs_node_metrics(node, b, c, l)
	})
}
