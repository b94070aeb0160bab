/*
 * A C host on hearsay's ABI: two nodes on loopback share silences and the notification log;
 * bad input from C gets a result code, a message and a metric; two nodes carrying Grafana
 * organisations 1 and 2 keep each organisation's states apart. Run by tests/c_abi.rs with a
 * scratch directory as its argument. Exits 0 and prints "all checks passed", or names the
 * failed check.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <time.h>

#include "hearsay.h"

static int failures = 0;

static hs_str S(const char *s) {
  hs_str out = {s, strlen(s)};
  return out;
}

static bool same(hs_str s, const char *want) {
  return s.len == strlen(want) && (s.len == 0 || memcmp(s.data, want, s.len) == 0);
}

static void last_error(char *buf, size_t cap) {
  size_t n = 0;
  if (hs_last_error_message(buf, cap - 1, &n) != HS_RESULT_OK) n = 0;
  buf[n] = '\0';
}

/* A call that must return `want`. */
#define EXPECT(want, call)                                                          \
  do {                                                                              \
    hs_result got_ = (call);                                                        \
    if (got_ != (want)) {                                                           \
      char msg_[512];                                                               \
      last_error(msg_, sizeof msg_);                                                \
      printf("FAIL %s:%d: %s returned %u, want %u (%s)\n", __FILE__, __LINE__,      \
             #call, (unsigned)got_, (unsigned)(want), msg_);                        \
      failures++;                                                                   \
    }                                                                               \
  } while (0)
#define OK(call) EXPECT(HS_RESULT_OK, call)
#define CHECK(cond)                                                                 \
  do {                                                                              \
    if (!(cond)) {                                                                  \
      printf("FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);                        \
      failures++;                                                                   \
    }                                                                               \
  } while (0)

static int64_t now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_REALTIME, &t);
  return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static void pause_ms(long ms) {
  struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&t, NULL);
}

static hs_node *start(const char *name, const char *dir) {
  hs_config *config = NULL;
  hs_node *node = NULL;
  OK(hs_config_new(&config));
  OK(hs_config_set_name(config, S(name)));
  OK(hs_config_set_bind_address(config, S("127.0.0.1:0")));
  OK(hs_config_set_gossip_interval_ms(config, 50));
  OK(hs_config_set_settle_timeout_ms(config, 300));
  if (dir) OK(hs_config_set_storage_dir(config, S(dir)));
  OK(hs_node_start(config, &node));
  hs_config_free(config);
  if (!node) {
    printf("FAIL: node %s did not start\n", name);
    exit(1);
  }
  return node;
}

static const hs_label ALERT[] = {
    {{"alertname", 9}, {"DiskFull", 8}},
    {{"instance", 8}, {"db1:9100", 8}},
};

/* Muting silences of `node` for ALERT, polled until `want` or 10 s. */
static size_t wait_mutes(const hs_node *node, size_t want) {
  size_t n = 0;
  for (int i = 0; i < 1000; i++) {
    OK(hs_node_mutes(node, ALERT, 2, now_ms(), &n));
    if (n == want) break;
    pause_ms(10);
  }
  return n;
}

/* The dedup row `node` reports for `flush`, polled until `want` or 10 s. */
static hs_dedup_row wait_row(const hs_node *node, hs_flush *flush, hs_dedup_row want) {
  hs_decision d = {false, 0};
  for (int i = 0; i < 1000; i++) {
    flush->now_ms = now_ms();
    OK(hs_node_should_notify(node, flush, &d));
    if (d.row == want) break;
    pause_ms(10);
  }
  return d.row;
}

/* A node carrying Grafana organisations 1 and 2, with flush logs. */
static hs_node *start_orgs(const char *name, const char *peer) {
  hs_config *config = NULL;
  hs_node *node = NULL;
  OK(hs_config_new(&config));
  OK(hs_config_set_name(config, S(name)));
  OK(hs_config_set_bind_address(config, S("127.0.0.1:0")));
  OK(hs_config_set_gossip_interval_ms(config, 50));
  OK(hs_config_set_settle_timeout_ms(config, 300));
  OK(hs_config_add_org(config, 1));
  OK(hs_config_add_org(config, 2));
  EXPECT(HS_RESULT_INVALID_ARGUMENT, hs_config_add_org(config, 2));
  OK(hs_config_set_flush_log(config, true));
  if (peer) OK(hs_config_add_peer(config, S(peer)));
  OK(hs_node_start(config, &node));
  hs_config_free(config);
  if (!node) {
    printf("FAIL: node %s did not start\n", name);
    exit(1);
  }
  return node;
}

/* Two organisations on one pair of nodes: what one logs, silences or flushes stays its own. */
static void organisations(void) {
  hs_node *a = start_orgs("org-a", NULL);
  char addr[64];
  size_t len = 0;
  OK(hs_node_address(a, addr, sizeof addr - 1, &len));
  addr[len] = '\0';
  hs_node *b = start_orgs("org-b", addr);
  hs_position pa = {0, 0, false}, pb = {0, 0, false};
  for (int i = 0; i < 1000 && (pa.visible != 2 || pb.visible != 2); i++, pause_ms(10)) {
    OK(hs_node_position(a, &pa));
    OK(hs_node_position(b, &pb));
  }
  CHECK(pa.visible == 2 && pb.visible == 2);

  hs_matcher m = {S("alertname"), S("DiskFull"), HS_MATCH_TYPE_EQUAL};
  hs_silence silence = {S(""), &m, 1, now_ms(), now_ms() + 3600 * 1000, S("c-test"), S("org 2")};
  char id[HS_SILENCE_ID_LEN];
  size_t id_len = 0;
  OK(hs_node_set_silence_in(a, S("silences:2"), &silence, now_ms(), id, sizeof id, &id_len));
  size_t n = 0;
  for (int i = 0; i < 1000 && n != 1; i++, pause_ms(10))
    OK(hs_node_mutes_in(b, S("silences:2"), ALERT, 2, now_ms(), &n));
  CHECK(n == 1);
  OK(hs_node_mutes_in(b, S("silences:1"), ALERT, 2, now_ms(), &n));
  CHECK(n == 0);

  uint64_t hash = 0;
  OK(hs_alert_hash(ALERT, 2, &hash));
  hs_flush flush = {{S("team-db"), S("webhook"), 0}, S("{}:{alertname=\"DiskFull\"}"),
                    &hash, 1, NULL, 0, false, 4 * 3600 * 1000, now_ms()};
  bool written = false;
  OK(hs_node_log_notification_in(a, S("notificationlog:1"), &flush, &written));
  CHECK(written);
  hs_decision d = {true, 0};
  for (int i = 0; i < 1000 && d.notify; i++, pause_ms(10)) {
    flush.now_ms = now_ms();
    OK(hs_node_should_notify_in(b, S("notificationlog:1"), &flush, &d));
  }
  CHECK(!d.notify);
  OK(hs_node_should_notify_in(b, S("notificationlog:2"), &flush, &d));
  CHECK(d.notify && d.row == HS_DEDUP_ROW_NO_ENTRY_FIRING);

  int64_t first = now_ms() - 30000;
  OK(hs_node_log_flush(a, S("flushlog:1"), 42, first, 24 * 3600 * 1000, now_ms(), &written));
  CHECK(written);
  bool found = false;
  hs_flush_entry entry = {0, 0};
  for (int i = 0; i < 1000 && !found; i++, pause_ms(10))
    OK(hs_node_flush_time(b, S("flushlog:1"), 42, &found, &entry));
  CHECK(found && entry.flush_time_ms == first);
  OK(hs_node_flush_time(b, S("flushlog:2"), 42, &found, &entry));
  CHECK(!found);
  EXPECT(HS_RESULT_FLUSH_LOG_REFUSED,
         hs_node_log_flush(a, S("flushlog:1"), 0, first, 0, now_ms(), &written));
  bool deleted = false;
  OK(hs_node_delete_flush(a, S("flushlog:1"), 42, &deleted));
  CHECK(deleted);
  found = true;
  for (int i = 0; i < 1000 && found; i++, pause_ms(10))
    OK(hs_node_flush_time(b, S("flushlog:1"), 42, &found, &entry));
  CHECK(!found);

  /* Alertmanager's keys are not there; the key-less calls say so. */
  EXPECT(HS_RESULT_NO_SUCH_STATE, hs_node_should_notify(a, &flush, &d));
  EXPECT(HS_RESULT_NO_SUCH_STATE, hs_node_mutes(a, ALERT, 2, now_ms(), &n));
  EXPECT(HS_RESULT_NO_SUCH_STATE, hs_node_flush_time(a, S("silences:1"), 1, &found, &entry));
  printf("organisations 1 and 2 stayed apart on %s\n", addr);
  hs_node_free(b);
  hs_node_free(a);
}

/* Two nodes on the Redis at `url`: same calls, other transport. */
static void redis_mode(const char *url) {
  hs_node *r[2] = {NULL, NULL};
  const char *names[2] = {"redis-a", "redis-b"};
  for (int i = 0; i < 2; i++) {
    hs_config *config = NULL;
    OK(hs_config_new(&config));
    OK(hs_config_set_name(config, S(names[i])));
    OK(hs_config_set_redis(config, S(url), S("c-test")));
    OK(hs_config_set_settle_timeout_ms(config, 300));
    OK(hs_node_start(config, &r[i]));
    hs_config_free(config);
    if (!r[i]) exit(1);
  }
  hs_config *bad = NULL;
  OK(hs_config_new(&bad));
  EXPECT(HS_RESULT_INVALID_ARGUMENT, hs_config_set_redis(bad, S("http://x"), S("")));
  hs_config_free(bad);
  OK(hs_node_wait_ready(r[1], 10000));
  size_t joined = 0;
  EXPECT(HS_RESULT_INVALID_ARGUMENT, hs_node_join(r[0], S("127.0.0.1:9094"), 100, &joined));
  size_t len = 0;
  /* Each re-reads the members every 5 s. */
  hs_position pos;
  hs_members *list = NULL;
  const hs_member *array = NULL;
  size_t count = 0;
  for (int i = 0; i < 1500; i++) {
    hs_members_free(list);
    list = NULL;
    OK(hs_node_members(r[0], &list));
    OK(hs_members_array(list, &array, &count));
    OK(hs_node_position(r[1], &pos));
    if (count == 2 && pos.visible == 2) break;
    pause_ms(10);
  }
  CHECK(count == 2 && same(array[0].name, "c-test:redis-a") &&
        same(array[1].name, "c-test:redis-b") && array[0].address.len == 0);
  hs_members_free(list);
  CHECK(pos.index == 1 && pos.visible == 2 && !pos.blind);
  hs_matcher matchers[] = {{S("alertname"), S("DiskFull"), HS_MATCH_TYPE_EQUAL}};
  int64_t t0 = now_ms();
  hs_silence silence = {S(""), matchers, 1, t0, t0 + 3600 * 1000, S("c-test"), S("redis")};
  char id[HS_SILENCE_ID_LEN];
  OK(hs_node_set_silence(r[0], &silence, t0, id, sizeof id, &len));
  CHECK(wait_mutes(r[1], 1) == 1);
  printf("a silence set on redis-a mutes on redis-b\n");
  hs_node_free(r[0]);
  hs_node_free(r[1]);
}

/* What the ABI refuses up front: lengths no object can have, absurd durations, a storage dir
   that cannot be written, a silence no peer would accept. */
static void refusals(const char *dir, const hs_silence *silence) {
  hs_config *config = NULL;
  OK(hs_config_new(&config));
  hs_str huge = {"x", SIZE_MAX};
  EXPECT(HS_RESULT_LENGTH_OVERFLOW, hs_config_set_label(config, huge));
  hs_str negative = {"x", (size_t)PTRDIFF_MAX + 1};
  EXPECT(HS_RESULT_LENGTH_OVERFLOW, hs_config_set_name(config, negative));
  EXPECT(HS_RESULT_INVALID_ARGUMENT, hs_config_set_retention_ms(config, HS_MAX_DURATION_MS + 1));
  EXPECT(HS_RESULT_INVALID_ARGUMENT, hs_config_set_gossip_interval_ms(config, UINT64_MAX));
  OK(hs_config_set_retention_ms(config, HS_MAX_DURATION_MS));
  OK(hs_config_set_bind_address(config, S("127.0.0.1:0")));

  /* A regular file where the storage dir should be: refused at start, even for root. */
  char path[4096];
  snprintf(path, sizeof path, "%s/not-a-dir", dir);
  FILE *f = fopen(path, "w");
  CHECK(f != NULL);
  if (f) fclose(f);
  snprintf(path, sizeof path, "%s/not-a-dir/sub", dir);
  OK(hs_config_set_storage_dir(config, S(path)));
  hs_node *node = NULL;
  EXPECT(HS_RESULT_IO, hs_node_start(config, &node));
  CHECK(node == NULL);
  char msg[512];
  last_error(msg, sizeof msg);
  CHECK(strstr(msg, "not-a-dir/sub") != NULL);
  hs_config_free(config);

  node = start("refusals", NULL);
  uint64_t hash = 1;
  hs_flush flush = {{S("r"), S("webhook"), 0}, S("{}"), &hash, 1, NULL, 0, false, 1000, now_ms()};
  hs_decision d;
  flush.firing_len = SIZE_MAX / 8 + 1;
  EXPECT(HS_RESULT_LENGTH_OVERFLOW, hs_node_should_notify(node, &flush, &d));
  flush.firing_len = 1;
  flush.repeat_interval_ms = UINT64_MAX;
  EXPECT(HS_RESULT_INVALID_ARGUMENT, hs_node_should_notify(node, &flush, &d));
  bool written = false;
  EXPECT(HS_RESULT_INVALID_ARGUMENT, hs_node_log_flush(node, S("flushlog:1"), 1, now_ms(),
                                                       HS_MAX_DURATION_MS + 1, now_ms(),
                                                       &written));

  /* Over the 4 MiB message limit: refused, not accepted and then never replicated. */
  size_t big_len = (4u << 20) + 1;
  char *big = malloc(big_len);
  memset(big, 'x', big_len);
  hs_silence too_big = *silence;
  too_big.id = S("");
  too_big.comment = (hs_str){big, big_len};
  too_big.starts_at_ms = now_ms();
  too_big.ends_at_ms = too_big.starts_at_ms + 3600 * 1000;
  char id[HS_SILENCE_ID_LEN];
  size_t id_len = 0;
  EXPECT(HS_RESULT_MESSAGE_TOO_LARGE,
         hs_node_set_silence(node, &too_big, now_ms(), id, sizeof id, &id_len));
  size_t muted = 0;
  OK(hs_node_mutes(node, ALERT, 2, now_ms(), &muted));
  CHECK(muted == 0);
  free(big);
  hs_node_free(node);
  printf("refused: overlong lengths, absurd durations, an unwritable dir, a 4 MiB silence\n");
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s <scratch dir> <redis url>\n", argv[0]);
    return 2;
  }
  const char *dir = argv[1];
  hs_str version = hs_version();
  printf("hearsay %.*s\n", (int)version.len, version.data);
  char macros[64];
  snprintf(macros, sizeof macros, "%d.%d.%d", HS_VERSION_MAJOR, HS_VERSION_MINOR,
           HS_VERSION_PATCH);
  CHECK(same(version, macros));

  /* Two nodes; b joins a. */
  hs_node *a = start("a", dir);
  hs_node *b = start("b", NULL);
  char addr[64];
  size_t len = 0;
  OK(hs_node_address(a, addr, sizeof addr - 1, &len));
  addr[len] = '\0';
  size_t joined = 0;
  OK(hs_node_join(b, S(addr), 5000, &joined));
  CHECK(joined == 1);
  /* Each side publishes its member list after the loop turn that changed it. */
  hs_position pa, pb;
  for (int i = 0; i < 1000; i++) {
    OK(hs_node_position(a, &pa));
    OK(hs_node_position(b, &pb));
    if (pa.visible == 2 && pb.visible == 2) break;
    pause_ms(10);
  }
  printf("a at %s: position %u of %u, b: position %u\n", addr, pa.index, pa.visible, pb.index);
  CHECK(pb.visible == 2 && pa.index + pb.index == 1 && !pb.blind);
  OK(hs_node_wait_ready(b, 10000));
  /* The members as structs, sorted by name. */
  hs_members *list = NULL;
  const hs_member *array = NULL;
  size_t count = 0;
  OK(hs_node_members(b, &list));
  OK(hs_members_array(list, &array, &count));
  CHECK(count == 2 && same(array[0].name, "a") && same(array[0].address, addr) &&
        same(array[1].name, "b") && array[1].address.len > 0);
  hs_members_free(list);
  hs_members_free(NULL);
  EXPECT(HS_RESULT_NULL_PARAMETER, hs_node_members(b, NULL));
  /* Events: the first poll tells everything visible and the position; then nothing. */
  hs_event events[8];
  size_t n_events = 0;
  OK(hs_node_poll_events(b, events, 1, &n_events));
  CHECK(n_events == 1 && events[0].kind == HS_EVENT_KIND_MEMBER_JOINED &&
        same(events[0].member.name, "a") && same(events[0].member.address, addr));
  OK(hs_node_poll_events(b, events, 8, &n_events));
  CHECK(n_events == 2 && events[0].kind == HS_EVENT_KIND_MEMBER_JOINED &&
        same(events[0].member.name, "b") && events[1].kind == HS_EVENT_KIND_POSITION_CHANGED &&
        events[1].position.visible == 2 && events[1].position.index == pb.index);
  OK(hs_node_poll_events(b, events, 8, &n_events));
  CHECK(n_events == 0);
  OK(hs_node_poll_events(b, NULL, 0, &n_events));
  CHECK(n_events == 0);
  bool ready = false;
  OK(hs_node_is_ready(b, &ready));
  CHECK(ready);

  /* A silence written on a mutes the alert on b. */
  hs_matcher matchers[] = {{S("alertname"), S("Disk.*"), HS_MATCH_TYPE_REGEXP}};
  int64_t t0 = now_ms();
  hs_silence silence = {S(""), matchers, 1, t0, t0 + 3600 * 1000, S("c-test"), S("maintenance")};
  char id[HS_SILENCE_ID_LEN + 1];
  size_t id_len = 0;
  OK(hs_node_set_silence(a, &silence, t0, id, HS_SILENCE_ID_LEN, &id_len));
  id[id_len] = '\0';
  CHECK(id_len == HS_SILENCE_ID_LEN);
  CHECK(wait_mutes(b, 1) == 1);
  printf("silence %s mutes the alert on b\n", id);

  /* Reading it back on b: by ID, by state, by the alert it mutes. */
  hs_str ids[] = {{id, id_len}};
  hs_silence_query by_id = {ids, 1, 0, NULL, 0, false};
  hs_silences *found = NULL;
  const hs_silence_info *info = NULL;
  size_t n_found = 0;
  OK(hs_node_query_silences(b, &by_id, now_ms(), &found));
  OK(hs_silences_array(found, &info, &n_found));
  CHECK(n_found == 1 && same(info[0].id, id) && info[0].state == HS_SILENCE_STATE_ACTIVE &&
        info[0].starts_at_ms == t0 && same(info[0].comment, "maintenance") &&
        same(info[0].created_by, "c-test") && info[0].matcher_sets_len == 1 &&
        info[0].matcher_sets[0].matchers_len == 1 &&
        same(info[0].matcher_sets[0].matchers[0].value, "Disk.*") &&
        info[0].matcher_sets[0].matchers[0].match_type == HS_MATCH_TYPE_REGEXP);
  hs_silences_free(found);
  hs_silence_query expired = {NULL, 0, 1u << HS_SILENCE_STATE_EXPIRED, NULL, 0, false};
  OK(hs_node_query_silences(b, &expired, now_ms(), &found));
  OK(hs_silences_array(found, &info, &n_found));
  CHECK(n_found == 0 && info == NULL);
  hs_silences_free(found);
  hs_silence_query muting = {NULL, 0, 0, ALERT, 2, true};
  OK(hs_node_query_silences(b, &muting, now_ms(), &found));
  OK(hs_silences_array(found, &info, &n_found));
  CHECK(n_found == 1);
  hs_silences_free(found);
  hs_label other[] = {{S("alertname"), S("CpuHot")}};
  hs_silence_query not_muting = {NULL, 0, 0, other, 1, true};
  OK(hs_node_query_silences(b, &not_muting, now_ms(), &found));
  OK(hs_silences_array(found, &info, &n_found));
  CHECK(n_found == 0);
  hs_silences_free(found);
  OK(hs_node_query_silences(b, NULL, now_ms(), &found));
  OK(hs_silences_array(found, &info, &n_found));
  CHECK(n_found == 1);
  hs_silences_free(found);
  hs_silences_free(NULL);
  hs_silence_query bad_states = {NULL, 0, 1u << 5, NULL, 0, false};
  EXPECT(HS_RESULT_INVALID_ARGUMENT, hs_node_query_silences(b, &bad_states, now_ms(), &found));
  printf("b lists the silence by ID, state and alert\n");

  /* Dedup: b would notify first; once a logs the notification, b skips. */
  uint64_t firing[1];
  OK(hs_alert_hash(ALERT, 2, &firing[0]));
  hs_flush flush = {
      .receiver = {S("team-db"), S("webhook"), 0},
      .group_key = S("{}:{alertname=\"DiskFull\"}"),
      .firing = firing,
      .firing_len = 1,
      .resolved = NULL,
      .resolved_len = 0,
      .send_resolved = true,
      .repeat_interval_ms = 4 * 3600 * 1000,
      .now_ms = now_ms(),
  };
  hs_decision d = {false, 0};
  OK(hs_node_should_notify(b, &flush, &d));
  CHECK(d.notify && d.row == HS_DEDUP_ROW_NO_ENTRY_FIRING);
  bool written = false;
  flush.now_ms = now_ms();
  OK(hs_node_log_notification(a, &flush, &written));
  CHECK(written);
  CHECK(wait_row(b, &flush, HS_DEDUP_ROW_UNCHANGED) == HS_DEDUP_ROW_UNCHANGED);
  OK(hs_node_should_notify(b, &flush, &d));
  CHECK(!d.notify);
  printf("b skips what a sent\n");

  /* Expiry travels too. */
  OK(hs_node_expire_silence(b, S(id), now_ms()));
  CHECK(wait_mutes(a, 0) == 0);
  printf("expired on b, unmuted on a\n");

  /* A host-owned state: the host's bytes travel; what peers send queues for the host. */
  hs_state_added added = HS_STATE_ADDED_REPLACED;
  OK(hs_node_add_state(a, S("host:1"), &added));
  CHECK(added == HS_STATE_ADDED_NEW);
  OK(hs_node_add_state(b, S("host:1"), &added));
  OK(hs_node_add_state(b, S("host:1"), &added));
  CHECK(added == HS_STATE_ADDED_REPLACED);
  hs_transport transport = HS_TRANSPORT_REDIS;
  OK(hs_node_transport(b, &transport));
  CHECK(transport == HS_TRANSPORT_GOSSIP);
  const uint8_t update[] = "counter=1";
  OK(hs_node_broadcast_state(a, S("host:1"), update, sizeof update));
  uint64_t cursor = 0;
  bool arrived = false;
  char payload[64];
  hs_payload_kind kind = HS_PAYLOAD_KIND_NONE;
  /* Too small a buffer leaves the payload queued and says how much room it needs. */
  hs_result r = HS_RESULT_OK;
  for (int i = 0; i < 100 && r != HS_RESULT_BUFFER_TOO_SMALL; i++) {
    OK(hs_node_wait_states(b, &cursor, 100, &arrived));
    r = hs_node_next_state_payload(b, S("host:1"), payload, 2, &len, &kind);
  }
  CHECK(r == HS_RESULT_BUFFER_TOO_SMALL && len == sizeof update);
  OK(hs_node_next_state_payload(b, S("host:1"), payload, sizeof payload, &len, &kind));
  CHECK(kind == HS_PAYLOAD_KIND_UPDATE && len == sizeof update && memcmp(payload, update, len) == 0);
  CHECK(cursor > 0);
  /* Gossip retransmits and the direct copy may deliver it again (merging is the host's and
     idempotent, as with Alertmanager's states); nothing else arrives. */
  for (int i = 0; i < 16 && kind != HS_PAYLOAD_KIND_NONE; i++) {
    OK(hs_node_next_state_payload(b, S("host:1"), payload, sizeof payload, &len, &kind));
    CHECK(kind == HS_PAYLOAD_KIND_NONE || (len == sizeof update && memcmp(payload, update, len) == 0));
  }
  CHECK(kind == HS_PAYLOAD_KIND_NONE && len == 0);
  printf("b got a's update to its host-owned state\n");

  /* Bad input: a code, a message naming the problem, nothing changed. */
  char msg[256];
  EXPECT(HS_RESULT_NULL_PARAMETER, hs_node_should_notify(NULL, &flush, &d));
  last_error(msg, sizeof msg);
  CHECK(strstr(msg, "node is NULL") != NULL);
  EXPECT(HS_RESULT_NULL_PARAMETER, hs_node_should_notify(b, NULL, &d));
  EXPECT(HS_RESULT_NULL_PARAMETER, hs_node_should_notify(b, &flush, NULL));
  hs_flush no_hashes = flush;
  no_hashes.firing = NULL;
  EXPECT(HS_RESULT_NULL_PARAMETER, hs_node_should_notify(b, &no_hashes, &d));
  hs_str bad_utf8 = {"\xff\xfe", 2};
  hs_flush bad_key = flush;
  bad_key.group_key = bad_utf8;
  EXPECT(HS_RESULT_INVALID_UTF8, hs_node_should_notify(b, &bad_key, &d));
  hs_matcher bad_type[] = {{S("alertname"), S("x"), 7}};
  hs_silence bad = silence;
  bad.matchers = bad_type;
  EXPECT(HS_RESULT_INVALID_ARGUMENT, hs_node_set_silence(a, &bad, t0, id, sizeof id, &id_len));
  hs_silence backwards = silence;
  backwards.ends_at_ms = t0 - 1000;
  EXPECT(HS_RESULT_INVALID_SILENCE,
         hs_node_set_silence(a, &backwards, t0, id, sizeof id, &id_len));
  last_error(msg, sizeof msg);
  printf("refused: %s\n", msg);
  CHECK(strstr(msg, "invalid silence") != NULL);
  EXPECT(HS_RESULT_SILENCE_NOT_FOUND, hs_node_expire_silence(a, S("no-such-id"), now_ms()));
  hs_config *config = NULL;
  OK(hs_config_new(&config));
  EXPECT(HS_RESULT_INVALID_ARGUMENT, hs_config_set_bind_address(config, S("localhost")));
  EXPECT(HS_RESULT_INVALID_ARGUMENT, hs_config_add_peer(config, S("no-port")));
  EXPECT(HS_RESULT_INVALID_ARGUMENT, hs_config_set_gossip_interval_ms(config, 0));
  hs_config_free(config);
  hs_config_free(NULL);
  hs_node_free(NULL);
  EXPECT(HS_RESULT_NULL_PARAMETER, hs_config_new(NULL));

  /* Metrics: Alertmanager's names, and the failures above counted. */
  char small[8];
  size_t need = 0;
  EXPECT(HS_RESULT_BUFFER_TOO_SMALL, hs_node_metrics(a, small, sizeof small, &need));
  char *metrics = malloc(need + 1);
  OK(hs_node_metrics(a, metrics, need, &len));
  metrics[len] = '\0';
  CHECK(strstr(metrics, "alertmanager_cluster_members 2") != NULL);
  CHECK(strstr(metrics, "alertmanager_silences_query_duration_seconds_count") != NULL);
  CHECK(strstr(metrics, "hearsay_ffi_errors_total{result=\"null_parameter\"} 6") != NULL);
  CHECK(strstr(metrics, "hearsay_ffi_errors_total{result=\"invalid_argument\"} 5") != NULL);
  CHECK(strstr(metrics, "hearsay_ffi_errors_total{result=\"invalid_silence\"} 1") != NULL);
  free(metrics);
  OK(hs_result_message(HS_RESULT_CORRUPT_SNAPSHOT, msg, sizeof msg - 1, &len));
  msg[len] = '\0';
  CHECK(strstr(msg, "corrupt snapshot") != NULL);

  /* The host's keys win: b's host registers its own sil, and b's native silences are off. */
  OK(hs_node_add_state(b, S("sil"), &added));
  CHECK(added == HS_STATE_ADDED_TOOK_NATIVE);
  size_t off_count = 0;
  EXPECT(HS_RESULT_NO_SUCH_STATE, hs_node_mutes(b, ALERT, 2, now_ms(), &off_count));
  last_error(msg, sizeof msg);
  CHECK(strstr(msg, "switched off") != NULL);
  EXPECT(HS_RESULT_BUFFER_TOO_SMALL, hs_node_metrics(b, small, sizeof small, &need));
  metrics = malloc(need + 1);
  OK(hs_node_metrics(b, metrics, need, &len));
  metrics[len] = '\0';
  CHECK(strstr(metrics, "hearsay_native_state_switched_off{key=\"sil\"} 1") != NULL);
  free(metrics);
  printf("b's host took sil: the native silences are switched off\n");

  /* A second silence survives a's restart from its snapshot (written when a is freed). */
  hs_silence keep = silence;
  keep.starts_at_ms = now_ms();
  keep.ends_at_ms = keep.starts_at_ms + 3600 * 1000;
  OK(hs_node_set_silence(a, &keep, now_ms(), id, sizeof id, &id_len));
  OK(hs_node_leave(a, 2000));
  hs_node_free(a);
  /* b sees a go: a member event, then its position among one. */
  bool left = false, alone = false;
  for (int i = 0; i < 1000 && !(left && alone); i++) {
    OK(hs_node_poll_events(b, events, 8, &n_events));
    for (size_t e = 0; e < n_events; e++) {
      left |= events[e].kind == HS_EVENT_KIND_MEMBER_LEFT && same(events[e].member.name, "a");
      alone |= events[e].kind == HS_EVENT_KIND_POSITION_CHANGED &&
               events[e].position.visible == 1;
    }
    if (!(left && alone)) pause_ms(10);
  }
  CHECK(left && alone);
  printf("b was told a left\n");
  hs_node_free(b);
  a = start("a", dir);
  size_t muted = 0;
  OK(hs_node_mutes(a, ALERT, 2, now_ms(), &muted));
  CHECK(muted == 1);
  printf("a restarted from %s with %zu muting silence\n", dir, muted);
  hs_node_free(a);

  refusals(dir, &silence);
  redis_mode(argv[2]);
  organisations();

  if (failures) {
    printf("%d checks failed\n", failures);
    return 1;
  }
  printf("all checks passed\n");
  return 0;
}
