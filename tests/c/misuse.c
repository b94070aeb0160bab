/*
 * A careless C host, built with AddressSanitizer and UBSan by tests/c_abi.rs: NULL for every
 * pointer, text that is not UTF-8, lengths no object can have, and eight threads hammering one
 * node (dedup, log, silences, mutes, members, events, metrics) while nothing else
 * synchronises them. Every call must answer with a result code; any sanitizer report, crash
 * or wrong code fails. Prints "misuse: all checks passed" and exits 0 otherwise.
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hearsay.h"

static int failures = 0;
static pthread_mutex_t failures_lock = PTHREAD_MUTEX_INITIALIZER;

static hs_str S(const char *s) { return (hs_str){s, strlen(s)}; }

#define EXPECT(want, call)                                                             \
  do {                                                                                 \
    hs_result got_ = (call);                                                           \
    if (got_ != (want)) {                                                              \
      printf("FAIL %s:%d: %s returned %u, want %u\n", __FILE__, __LINE__, #call,       \
             (unsigned)got_, (unsigned)(want));                                        \
      pthread_mutex_lock(&failures_lock);                                              \
      failures++;                                                                      \
      pthread_mutex_unlock(&failures_lock);                                            \
    }                                                                                  \
  } while (0)
#define OK(call) EXPECT(HS_RESULT_OK, call)

static int64_t now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_REALTIME, &t);
  return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static const hs_label ALERT[] = {{{"alertname", 9}, {"DiskFull", 8}}};

/* NULL in every pointer position a caller can get wrong. */
static void nulls(hs_node *node) {
  hs_config *config = NULL;
  EXPECT(HS_RESULT_NULL_PARAMETER, hs_config_new(NULL));
  EXPECT(HS_RESULT_NULL_PARAMETER, hs_config_set_name(NULL, S("x")));
  EXPECT(HS_RESULT_NULL_PARAMETER, hs_node_start(NULL, NULL));
  OK(hs_config_new(&config));
  EXPECT(HS_RESULT_NULL_PARAMETER, hs_node_start(config, NULL));
  hs_str null_text = {NULL, 3};
  EXPECT(HS_RESULT_NULL_PARAMETER, hs_config_set_label(config, null_text));
  hs_str empty = {NULL, 0};
  OK(hs_config_set_label(config, empty));
  hs_config_free(config);
  hs_config_free(NULL);
  hs_node_free(NULL);
  hs_members_free(NULL);

  hs_decision d;
  bool b = false;
  size_t n = 0;
  uint64_t u = 0;
  EXPECT(HS_RESULT_NULL_PARAMETER, hs_node_should_notify(NULL, NULL, &d));
  EXPECT(HS_RESULT_NULL_PARAMETER, hs_node_should_notify(node, NULL, &d));
  EXPECT(HS_RESULT_NULL_PARAMETER, hs_node_log_notification(node, NULL, &b));
  EXPECT(HS_RESULT_NULL_PARAMETER, hs_node_set_silence(node, NULL, 0, NULL, 0, NULL));
  EXPECT(HS_RESULT_NULL_PARAMETER, hs_node_mutes(node, NULL, 1, 0, &n));
  EXPECT(HS_RESULT_NULL_PARAMETER, hs_node_mutes(node, ALERT, 1, 0, NULL));
  EXPECT(HS_RESULT_NULL_PARAMETER, hs_alert_hash(NULL, 1, &u));
  EXPECT(HS_RESULT_NULL_PARAMETER, hs_alert_hash(ALERT, 1, NULL));
  EXPECT(HS_RESULT_NULL_PARAMETER, hs_node_members(NULL, NULL));
  EXPECT(HS_RESULT_NULL_PARAMETER, hs_members_array(NULL, NULL, NULL));
  EXPECT(HS_RESULT_NULL_PARAMETER, hs_node_poll_events(node, NULL, 4, &n));
  EXPECT(HS_RESULT_NULL_PARAMETER, hs_node_poll_events(node, NULL, 0, NULL));
  EXPECT(HS_RESULT_NULL_PARAMETER, hs_node_position(node, NULL));
  EXPECT(HS_RESULT_NULL_PARAMETER, hs_node_metrics(node, NULL, (size_t)1 << 30, &n));
  EXPECT(HS_RESULT_NULL_PARAMETER, hs_node_name(node, NULL, 0, NULL));
  EXPECT(HS_RESULT_NULL_PARAMETER, hs_last_error_message(NULL, 0, NULL));
  EXPECT(HS_RESULT_NULL_PARAMETER, hs_result_message(0, NULL, 0, NULL));
  EXPECT(HS_RESULT_NULL_PARAMETER, hs_node_wait_states(node, NULL, 0, &b));
}

/* Bytes that are not UTF-8, where text is expected. */
static void bad_utf8(hs_node *node) {
  hs_str bad[] = {{"\xff", 1}, {"\xc3", 1}, {"a\xed\xa0\x80", 4}, {"\xf8\x88\x80\x80\x80", 5}};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    hs_config *config = NULL;
    OK(hs_config_new(&config));
    EXPECT(HS_RESULT_INVALID_UTF8, hs_config_set_name(config, bad[i]));
    EXPECT(HS_RESULT_INVALID_UTF8, hs_config_add_peer(config, bad[i]));
    hs_config_free(config);
    hs_label label = {bad[i], S("v")};
    uint64_t h = 0;
    EXPECT(HS_RESULT_INVALID_UTF8, hs_alert_hash(&label, 1, &h));
    size_t n = 0;
    EXPECT(HS_RESULT_INVALID_UTF8, hs_node_mutes(node, &label, 1, now_ms(), &n));
    EXPECT(HS_RESULT_INVALID_UTF8, hs_node_expire_silence(node, bad[i], now_ms()));
    EXPECT(HS_RESULT_INVALID_UTF8, hs_node_broadcast_state(node, bad[i], NULL, 0));
  }
}

/* Lengths above PTRDIFF_MAX: refused before anything is read. */
static void oversize(hs_node *node) {
  hs_str huge = {"x", SIZE_MAX};
  hs_config *config = NULL;
  OK(hs_config_new(&config));
  EXPECT(HS_RESULT_LENGTH_OVERFLOW, hs_config_set_name(config, huge));
  EXPECT(HS_RESULT_LENGTH_OVERFLOW, hs_config_add_key(config, (const uint8_t *)"k", SIZE_MAX));
  hs_config_free(config);
  uint64_t h = 0;
  size_t n = 0;
  EXPECT(HS_RESULT_LENGTH_OVERFLOW, hs_alert_hash(ALERT, SIZE_MAX / 2, &h));
  EXPECT(HS_RESULT_LENGTH_OVERFLOW, hs_node_mutes(node, ALERT, SIZE_MAX, now_ms(), &n));
  EXPECT(HS_RESULT_LENGTH_OVERFLOW,
         hs_node_set_state(node, S("host"), (const uint8_t *)"x", (size_t)PTRDIFF_MAX + 1));
  /* A buffer that claims more room than it has is never written past what is needed. */
  char small[4];
  EXPECT(HS_RESULT_BUFFER_TOO_SMALL, hs_node_metrics(node, small, sizeof small, &n));
}

/* Eight threads on one node, nothing else synchronising them. */
static hs_node *shared_node;

static void *hammer(void *arg) {
  int t = (int)(intptr_t)arg;
  char group[32];
  snprintf(group, sizeof group, "{}:{t=\"%d\"}", t);
  uint64_t hash = 0;
  OK(hs_alert_hash(ALERT, 1, &hash));
  for (int i = 0; i < 200; i++) {
    hs_flush flush = {{S("team"), S("webhook"), (uint32_t)t}, S(group), &hash, 1, NULL, 0,
                      false, 3600 * 1000, now_ms()};
    hs_decision d;
    bool written = false;
    OK(hs_node_should_notify(shared_node, &flush, &d));
    if (d.notify) OK(hs_node_log_notification(shared_node, &flush, &written));
    size_t n = 0;
    OK(hs_node_mutes(shared_node, ALERT, 1, now_ms(), &n));
    if (i % 20 == 0) {
      hs_matcher m = {S("alertname"), S("Disk.*"), HS_MATCH_TYPE_REGEXP};
      int64_t t0 = now_ms();
      hs_silence s = {S(""), &m, 1, t0, t0 + 60000, S("misuse"), S("threads")};
      char id[HS_SILENCE_ID_LEN];
      size_t id_len = 0;
      OK(hs_node_set_silence(shared_node, &s, t0, id, sizeof id, &id_len));
      hs_str written_id = {id, id_len};
      OK(hs_node_expire_silence(shared_node, written_id, now_ms()));
    }
    hs_members *list = NULL;
    const hs_member *array = NULL;
    OK(hs_node_members(shared_node, &list));
    OK(hs_members_array(list, &array, &n));
    for (size_t m = 0; m < n; m++) (void)(array[m].name.len + array[m].address.len);
    hs_members_free(list);
    /* Event views are the poller's until its next poll: copy what is needed at once. */
    hs_event events[4];
    OK(hs_node_poll_events(shared_node, events, 4, &n));
    hs_position p;
    OK(hs_node_position(shared_node, &p));
    char name[64];
    OK(hs_node_name(shared_node, name, sizeof name, &n));
    EXPECT(HS_RESULT_NULL_PARAMETER, hs_node_should_notify(shared_node, NULL, &d));
    char msg[128];
    OK(hs_last_error_message(msg, sizeof msg, &n));
    if (i % 50 == 0) {
      char *metrics = malloc(1 << 20);
      OK(hs_node_metrics(shared_node, metrics, 1 << 20, &n));
      free(metrics);
    }
  }
  return NULL;
}

int main(void) {
  hs_config *config = NULL;
  OK(hs_config_new(&config));
  OK(hs_config_set_name(config, S("misuse")));
  OK(hs_config_set_bind_address(config, S("127.0.0.1:0")));
  OK(hs_config_set_settle_timeout_ms(config, 200));
  OK(hs_node_start(config, &shared_node));
  hs_config_free(config);
  if (!shared_node) {
    printf("FAIL: the node did not start\n");
    return 1;
  }
  nulls(shared_node);
  bad_utf8(shared_node);
  oversize(shared_node);
  pthread_t threads[8];
  for (int t = 0; t < 8; t++) pthread_create(&threads[t], NULL, hammer, (void *)(intptr_t)t);
  for (int t = 0; t < 8; t++) pthread_join(threads[t], NULL);
  hs_node_free(shared_node);
  if (failures) {
    printf("misuse: %d checks failed\n", failures);
    return 1;
  }
  printf("misuse: all checks passed\n");
  return 0;
}
