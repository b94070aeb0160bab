//! hearsay in one cluster with stock Alertmanagers: Debian's 0.25.0 (memberlist 0.2.2) and the
//! latest release built from the Go module proxy. Silences are driven with amtool against both
//! kinds of node; the notification log through the library, since Alertmanager has no API for it.

mod util;

use std::path::Path;
use std::time::Duration;

use hearsay::core::UnixMillis;
use hearsay::core::cluster::Cluster;
use hearsay::core::state::labels::{LabelSet, fingerprint};
use hearsay::core::state::nflog::{Nflog, Receiver};
use hearsay::core::state::silences::matcher::MAX_PATTERN_BYTES;
use hearsay::core::state::silences::{Query, Silences, SilencesConfig};
use hearsay::node::{Node, States as _};
use util::alertmanager::{
    Alertmanager, Hearsay, add_silence, copy_dir, debian, expire_silence, latest, scratch, summary,
};
use util::wait_for;

const SPREAD: Duration = Duration::from_secs(15);

fn state_of(silences: &serde_json::Value, id: &str) -> Option<String> {
    summary(silences).into_iter().find(|(_, sid, _)| sid == id).map(|(_, _, state)| state)
}

/// Silences created on either kind of node reach every node; expiry too.
fn silences_flow(am_bin: &Path) {
    let a = Alertmanager::alertmanager(am_bin, &scratch("am-a"), &[]);
    let b = Alertmanager::alertmanager(am_bin, &scratch("am-b"), &[a.cluster]);
    let h = Hearsay::hearsay(&scratch("hs"), &[a.cluster]);

    let from_am = add_silence(a.web, "alertname=FromAlertmanager", "am-user");
    wait_for("the Alertmanager silence reaches hearsay", SPREAD, || {
        state_of(&h.silences(), &from_am).as_deref() == Some("active")
    });
    let from_hs = add_silence(h.web, "alertname=FromHearsay", "hs-user");
    wait_for("the hearsay silence reaches both Alertmanagers", SPREAD, || {
        state_of(&a.silences(), &from_hs).as_deref() == Some("active")
            && state_of(&b.silences(), &from_hs).as_deref() == Some("active")
    });

    expire_silence(h.web, &from_am);
    wait_for("expiry on hearsay reaches both Alertmanagers", SPREAD, || {
        state_of(&a.silences(), &from_am).as_deref() == Some("expired")
            && state_of(&b.silences(), &from_am).as_deref() == Some("expired")
    });
    expire_silence(b.web, &from_hs);
    wait_for("expiry on an Alertmanager reaches hearsay", SPREAD, || {
        state_of(&h.silences(), &from_hs).as_deref() == Some("expired")
    });
}

#[test]
fn silences_flow_between_hearsay_and_alertmanager_0_25() {
    silences_flow(&debian());
}

#[test]
fn silences_flow_between_hearsay_and_the_latest_alertmanager() {
    silences_flow(&latest());
}

/// An nflog entry logged on hearsay lands in an Alertmanager's nflog snapshot.
fn nflog_reaches_alertmanager_snapshot(am_bin: &Path) {
    let mut am = Alertmanager::alertmanager(am_bin, &scratch("am-nflog"), &[]);
    let mut cluster = Cluster::new();
    let retention = Duration::from_secs(120 * 3600);
    cluster.register("nfl", Nflog::new(retention));
    cluster.register("sil", Silences::new(SilencesConfig::default(), 1));
    let mut config = util::fast_config("hs-nflog", vec![am.cluster.to_string()]);
    config.swim.push_pull_interval = Duration::from_secs(2);
    let node = Node::start_cluster(config, cluster, None).expect("starts");
    wait_for("hearsay joins the Alertmanager", SPREAD, || util::alive(&node).len() == 2);

    let receiver = Receiver { group_name: "hook".into(), integration: "webhook".into(), idx: 0 };
    let group_key = "{}:{alertname=\"FromHearsay\"}";
    let now = UnixMillis(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_millis() as i64,
    );
    node.with_cluster(|c| {
        let bytes = c
            .state_mut::<Nflog>("nfl")
            .expect("registered")
            .log(
                &receiver,
                group_key,
                &[1, 2, 3],
                &[],
                &Default::default(),
                Some(Duration::from_secs(8 * 3600)),
                now,
            )
            .expect("logged")
            .expect("written");
        c.publish("nfl", bytes);
    });
    // Alertmanager snapshots every second (see the harness); watch its file.
    let logged = || {
        let Ok(file) = std::fs::read(am.dir.join("nflog")) else { return None };
        let log = Nflog::load(&file, retention).expect("our codec reads Alertmanager's file");
        log.query(&receiver, group_key).map(|e| e.firing_alerts())
    };
    wait_for("the entry in Alertmanager's nflog file", SPREAD, || logged().is_some());
    assert_eq!(logged(), Some(vec![1, 2, 3]));
    am.stop();
}

/// Alertmanager has no bound on a regex matcher: a silence with one longer than hearsay's
/// ([`MAX_PATTERN_BYTES`]) reaches hearsay by gossip and is kept (listed, counted) but never
/// mutes, while a small silence sent after it does.
#[test]
fn a_gossiped_regex_over_the_bound_is_kept_and_never_mutes() {
    let am = Alertmanager::alertmanager(&debian(), &scratch("am-huge"), &[]);
    let mut cluster = Cluster::new();
    cluster.register("sil", Silences::new(SilencesConfig::default(), 1));
    let config = util::fast_config("hs-huge", vec![am.cluster.to_string()]);
    let node = Node::start_cluster(config, cluster, None).expect("starts");
    wait_for("hearsay joins the Alertmanager", SPREAD, || util::alive(&node).len() == 2);

    // `Huge|host-000000|host-000001|…`, past the bound: it would match `Huge` if compiled.
    let mut pattern = String::from("Huge");
    for i in 0.. {
        if pattern.len() > MAX_PATTERN_BYTES {
            break;
        }
        pattern.push_str(&format!("|host-{i:06}"));
    }
    let huge = add_silence(am.web, &format!("alertname=~\"{pattern}\""), "am-user");
    let small = add_silence(am.web, "alertname=Small", "am-user");
    let alert = |name: &str| -> LabelSet { [("alertname".to_owned(), name.to_owned())].into() };
    let now = || {
        UnixMillis(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("clock")
                .as_millis() as i64,
        )
    };
    let both = Query { ids: vec![huge.clone(), small], ..Query::default() };
    wait_for("both silences reach hearsay", SPREAD, || {
        node.query_silences("sil", &both, now()).expect("registered").len() == 2
    });
    let mutes = |name: &str| {
        let a = alert(name);
        node.mutes("sil", fingerprint(&a), &a, now()).expect("registered").is_muted()
    };
    assert!(mutes("Small"), "the small silence works");
    assert!(!mutes("Huge"), "the one over the bound never matches");
    let errors = node.with_cluster(|c| {
        c.state::<Silences>("sil").expect("registered").metrics().matcher_compile_errors_index_total
    });
    assert_eq!(errors, Some(1));
    let listed = node.query_silences("sil", &both, now()).expect("registered");
    let kept = listed.iter().find(|(_, s)| s.id == huge).expect("kept");
    assert_eq!(kept.1.matcher_sets[0].matchers[0].pattern, pattern);
}

#[test]
fn nflog_entries_reach_alertmanager_0_25_snapshots() {
    nflog_reaches_alertmanager_snapshot(&debian());
}

#[test]
fn nflog_entries_reach_the_latest_alertmanagers_snapshots() {
    nflog_reaches_alertmanager_snapshot(&latest());
}

/// Files move freely between hearsay and Alertmanager, and hearsay restarts from its own.
fn snapshots_are_interchangeable(am_bin: &Path) {
    let am_dir = scratch("am-files");
    let mut am = Alertmanager::alertmanager(am_bin, &am_dir, &[]);
    let ids: Vec<String> =
        (0..3).map(|i| add_silence(am.web, &format!("alertname=File{i}"), "files")).collect();
    am.stop();

    // hearsay loads what Alertmanager wrote.
    let hs_dir = scratch("hs-files");
    copy_dir(&am_dir, &hs_dir);
    let mut h = Hearsay::hearsay(&hs_dir, &[]);
    let loaded = summary(&h.silences());
    assert!(
        ids.iter().all(|id| loaded.iter().any(|(_, sid, state)| sid == id && state == "active")),
        "{loaded:?}"
    );
    let own = add_silence(h.web, "alertname=HearsayOwn", "files");
    h.stop();

    // hearsay restarted from its own snapshot keeps every silence.
    let h2 = Hearsay::hearsay(&hs_dir, &[]);
    let reloaded = summary(&h2.silences());
    assert_eq!(reloaded.len(), 4, "{reloaded:?}");
    assert!(reloaded.iter().any(|(_, sid, _)| *sid == own));
    drop(h2);

    // An Alertmanager started on hearsay's files shows the same silences.
    let am2_dir = scratch("am-from-hs");
    copy_dir(&hs_dir, &am2_dir);
    let _ = std::fs::remove_file(am2_dir.join("alertmanager.log"));
    let am2 = Alertmanager::alertmanager(am_bin, &am2_dir, &[]);
    let shown = summary(&am2.silences());
    assert_eq!(shown.iter().map(|(_, id, _)| id.clone()).collect::<Vec<_>>().len(), 4, "{shown:?}");
    assert!(shown.iter().any(|(_, sid, _)| *sid == own));
}

#[test]
fn snapshots_move_between_hearsay_and_alertmanager_0_25() {
    snapshots_are_interchangeable(&debian());
}

#[test]
fn snapshots_move_between_hearsay_and_the_latest_alertmanager() {
    snapshots_are_interchangeable(&latest());
}

#[test]
fn a_three_way_cluster_of_0_25_latest_and_hearsay_agrees_on_silences() {
    let old = Alertmanager::alertmanager(&debian(), &scratch("am-old"), &[]);
    let new = Alertmanager::alertmanager(&latest(), &scratch("am-new"), &[old.cluster]);
    let h = Hearsay::hearsay(&scratch("hs-3"), &[old.cluster, new.cluster]);
    let ids = [
        add_silence(old.web, "alertname=FromOld", "old"),
        add_silence(new.web, "alertname=FromNew", "new"),
        add_silence(h.web, "alertname=FromHearsay", "hearsay"),
    ];
    wait_for("every node shows all three silences active", SPREAD, || {
        [old.web, new.web, h.web].iter().all(|web| {
            let list = util::alertmanager::api_silences(*web);
            ids.iter().all(|id| state_of(&list, id).as_deref() == Some("active"))
        })
    });
    expire_silence(new.web, &ids[0]);
    wait_for("expiry reaches every node", SPREAD, || {
        [old.web, new.web, h.web].iter().all(|web| {
            state_of(&util::alertmanager::api_silences(*web), &ids[0]).as_deref() == Some("expired")
        })
    });
}
