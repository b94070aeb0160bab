//! Go peers in Grafana's Redis HA layout for interop tests: the `grafanapeer` harness
//! (tests/interop/grafanapeer: go-redis v9 with Alertmanager's Go notification log and
//! silences), driven over JSON lines.
//!
//! A missing Go toolchain or a failed build fails the test loudly; it never skips.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::Duration;

use serde_json::{Value, json};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Build the harness once per test process.
pub fn grafanapeer() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let out = root().join("target/interop");
            let status = Command::new("bash")
                .arg(root().join("tests/interop/grafanapeer/build.sh"))
                .arg(&out)
                .status()
                .expect("bash runs tests/interop/grafanapeer/build.sh (Go toolchain required)");
            assert!(
                status.success(),
                "building the Go Redis peer failed: is Go installed? (make deps)"
            );
            let bin = out.join("grafanapeer");
            assert!(bin.exists(), "missing {}", bin.display());
            bin
        })
        .clone()
}

/// One Go peer; killed when dropped.
pub struct GrafanaPeer {
    pub name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<Value>,
    log: PathBuf,
}

impl GrafanaPeer {
    /// Start a peer named `name` on the Redis at `addr` (`host:port`) under `prefix`, with
    /// extra `args` (the interval flags), and wait until every subscription is confirmed.
    pub fn start(name: &str, addr: &str, prefix: &str, args: &[&str]) -> Self {
        let log = root().join(format!("target/interop/{name}-grafana-{}.log", std::process::id()));
        let stderr = std::fs::File::create(&log).expect("log file");
        let mut child = Command::new(grafanapeer())
            .args(["-name", name, "-redis", addr, "-prefix", prefix])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("grafanapeer starts");
        let stdin = child.stdin.take().expect("piped");
        let stdout = child.stdout.take().expect("piped");
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                let value: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("bad line {line:?}: {e}"));
                if tx.send(value).is_err() {
                    return;
                }
            }
        });
        let mut peer = Self { name: name.into(), child, stdin: Some(stdin), lines, log };
        let ready = peer.next_line(Duration::from_secs(20));
        assert_eq!(ready["event"], "ready", "{}: {ready}", peer.name);
        peer
    }

    /// Send a command and return its reply, which must be `ok`.
    pub fn cmd(&mut self, cmd: Value) -> Value {
        let name = cmd["cmd"].clone();
        let stdin = self.stdin.as_mut().expect("running");
        writeln!(stdin, "{cmd}").expect("grafanapeer stdin");
        stdin.flush().expect("grafanapeer stdin");
        let reply = self.next_line(Duration::from_secs(30));
        assert_eq!(reply["reply"], name, "{}: reply to the wrong command: {reply}", self.name);
        assert_eq!(reply["ok"], true, "{}: {reply}", self.name);
        reply
    }

    fn next_line(&mut self, timeout: Duration) -> Value {
        match self.lines.recv_timeout(timeout) {
            Ok(v) => v,
            Err(RecvTimeoutError::Timeout) => {
                panic!("{}: no output in time; log:\n{}", self.name, self.log_tail())
            }
            Err(RecvTimeoutError::Disconnected) => {
                panic!("{}: exited; log:\n{}", self.name, self.log_tail())
            }
        }
    }

    /// The live members' heartbeat keys, sorted byte-wise, and our position among them.
    pub fn members(&mut self) -> (Vec<String>, usize) {
        let reply = self.cmd(json!({"cmd": "members"}));
        let members = reply["members"].as_array().expect("members array");
        let members = members.iter().map(|m| m.as_str().expect("a key").to_owned()).collect();
        (members, reply["position"].as_u64().expect("position") as usize)
    }

    /// Create the silence `label="value"` for an hour; its ID.
    pub fn set_silence(&mut self, label: &str, value: &str, comment: &str) -> String {
        let reply =
            self.cmd(json!({"cmd": "silence", "label": label, "value": value, "comment": comment}));
        reply["id"].as_str().expect("an id").to_owned()
    }

    /// IDs of every silence held.
    pub fn silence_ids(&mut self) -> Vec<String> {
        let reply = self.cmd(json!({"cmd": "silences"}));
        let list = reply["silences"].as_array().expect("silences array");
        list.iter().map(|s| s["id"].as_str().expect("an id").to_owned()).collect()
    }

    /// Log that `group_key` was notified to receiver `(group, integration, 0)` with `firing`.
    pub fn log(&mut self, group: &str, integration: &str, group_key: &str, firing: &[u64]) {
        self.cmd(json!({"cmd": "log", "receiver": group, "integration": integration,
            "group_key": group_key, "firing": firing}));
    }

    /// The firing alerts of the entry for `group_key` at receiver `(group, integration, 0)`,
    /// `None` without one.
    pub fn entry(&mut self, group: &str, integration: &str, group_key: &str) -> Option<Vec<u64>> {
        let reply = self.cmd(json!({"cmd": "entry", "receiver": group,
            "integration": integration, "group_key": group_key}));
        let entry = &reply["entry"];
        if entry.is_null() {
            return None;
        }
        let firing = entry["firing"].as_array().map_or(&[][..], Vec::as_slice);
        Some(firing.iter().map(|v| v.as_u64().expect("a hash")).collect())
    }

    /// Publish a full-state request now.
    pub fn request(&mut self) {
        self.cmd(json!({"cmd": "request"}));
    }

    /// One of the peer's counters (`full_states_received`, `full_states_sent`,
    /// `requests_received`, `requests_sent`, `updates_received`, `updates_sent`,
    /// `updates_dropped`, `merge_errors`).
    pub fn stat(&mut self, name: &str) -> u64 {
        let reply = self.cmd(json!({"cmd": "stats"}));
        reply["stats"][name].as_u64().unwrap_or_else(|| panic!("no stat {name}: {reply}"))
    }

    /// Close stdin: the peer publishes a last full state, deletes its heartbeat and exits.
    pub fn shutdown(&mut self) {
        drop(self.stdin.take());
        let status = self.child.wait().expect("grafanapeer exits");
        assert!(status.success(), "{}: {status}; log:\n{}", self.name, self.log_tail());
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for GrafanaPeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
