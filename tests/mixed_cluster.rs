//! hearsay in one cluster with stock Alertmanagers.

mod util;

use std::time::Duration;

use util::alertmanager::{Alertmanager, debian, scratch, summary};
use util::wait_for;

#[test]
fn two_debian_alertmanagers_share_silences() {
    let a = Alertmanager::start(&debian(), &scratch("am-a"), &[]);
    let b = Alertmanager::start(&debian(), &scratch("am-b"), &[a.cluster]);
    let out = a.amtool(&[
        "silence",
        "add",
        "alertname=Test",
        "-c",
        "harness check",
        "-a",
        "tester",
        "-d",
        "1h",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    wait_for("the silence reaches b", Duration::from_secs(10), || {
        summary(&b.silences()).len() == 1
    });
}
