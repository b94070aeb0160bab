//! Real Go memberlist peers for interop tests: the `mlpeer` harness (tests/interop/mlpeer),
//! built against a given memberlist version and driven over JSON lines.
//!
//! A missing Go toolchain or a failed build fails the test loudly; it never skips.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// memberlist versions we test against: what Alertmanager 0.25–0.27 embed, and the latest.
pub const VERSIONS: [&str; 2] = ["v0.5.0", "v0.7.0"];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Build both harness binaries once per test process; return the one for `version`.
pub fn mlpeer(version: &str) -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    let dir = BUILT.get_or_init(|| {
        let out = root().join("target/interop");
        let status = Command::new("bash")
            .arg(root().join("tests/interop/mlpeer/build.sh"))
            .arg(&out)
            .status()
            .expect("bash runs tests/interop/mlpeer/build.sh (Go toolchain required)");
        assert!(
            status.success(),
            "building the Go memberlist harness failed: is Go installed? (make deps)"
        );
        out
    });
    let bin = dir.join(format!("mlpeer-{version}"));
    assert!(bin.exists(), "missing {}", bin.display());
    bin
}

/// One Go memberlist node.
pub struct GoPeer {
    pub name: String,
    pub addr: SocketAddr,
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<Value>,
    events: VecDeque<Value>,
    log: PathBuf,
}

impl GoPeer {
    /// Start `mlpeer peer` with `args` (after the name and bind flags) and wait for it to be up.
    pub fn start(version: &str, name: &str, args: &[&str]) -> Self {
        let bin = mlpeer(version);
        let log =
            root().join(format!("target/interop/{name}-{version}-{}.log", std::process::id()));
        let stderr = std::fs::File::create(&log).expect("log file");
        let mut child = Command::new(bin)
            .args(["peer", "-name", name, "-bind", "127.0.0.1:0"])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("mlpeer starts");
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
        let mut peer = Self {
            name: name.into(),
            addr: "0.0.0.0:0".parse().expect("literal"),
            child,
            stdin,
            lines,
            events: VecDeque::new(),
            log,
        };
        let ready = peer.event(Duration::from_secs(20), |e| e["event"] == "ready");
        let ip = ready["addr"].as_str().expect("addr");
        let port = ready["port"].as_u64().expect("port");
        peer.addr = format!("{ip}:{port}").parse().expect("ready address");
        peer
    }

    /// Send a command and return its reply; events seen meanwhile are kept for [`Self::event`].
    pub fn cmd(&mut self, cmd: Value) -> Value {
        let name = cmd["cmd"].clone();
        writeln!(self.stdin, "{cmd}").expect("mlpeer stdin");
        self.stdin.flush().expect("mlpeer stdin");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let line = self.next_line(deadline);
            if line.get("reply").is_some() {
                assert_eq!(line["reply"], name, "reply to the wrong command: {line}");
                return line;
            }
            self.events.push_back(line);
        }
    }

    /// The events already read (kept by [`Self::cmd`] and [`Self::event`]) that match `pred`;
    /// a command's reply follows every event the node wrote before it.
    pub fn events_matching(&self, pred: impl Fn(&Value) -> bool) -> Vec<Value> {
        self.events.iter().filter(|e| pred(e)).cloned().collect()
    }

    /// The first event (kept or new) matching `pred`, within `timeout`. Earlier non-matching
    /// events stay queued.
    pub fn event(&mut self, timeout: Duration, mut pred: impl FnMut(&Value) -> bool) -> Value {
        if let Some(i) = self.events.iter().position(&mut pred) {
            return self.events.remove(i).expect("index found");
        }
        let deadline = Instant::now() + timeout;
        loop {
            let line = self.next_line(deadline);
            if line.get("event").is_some() && pred(&line) {
                return line;
            }
            self.events.push_back(line);
        }
    }

    fn next_line(&mut self, deadline: Instant) -> Value {
        let left = deadline.saturating_duration_since(Instant::now());
        match self.lines.recv_timeout(left) {
            Ok(v) => v,
            Err(RecvTimeoutError::Timeout) => {
                panic!("{}: no expected output in time; log:\n{}", self.name, self.log_tail())
            }
            Err(RecvTimeoutError::Disconnected) => {
                panic!("{}: exited; log:\n{}", self.name, self.log_tail())
            }
        }
    }

    /// (name, state) of every member the Go node reports, sorted by name.
    pub fn members(&mut self) -> Vec<(String, String)> {
        let reply = self.cmd(json!({"cmd": "members"}));
        let mut out: Vec<(String, String)> = reply["members"]
            .as_array()
            .expect("members array")
            .iter()
            .map(|m| {
                (
                    m["name"].as_str().expect("name").to_owned(),
                    m["state"].as_str().expect("state").to_owned(),
                )
            })
            .collect();
        out.sort();
        out
    }

    /// Names of alive members.
    pub fn alive(&mut self) -> Vec<String> {
        self.members().into_iter().filter(|(_, s)| s == "alive").map(|(n, _)| n).collect()
    }

    /// Join the given addresses; returns the reply.
    pub fn join(&mut self, addrs: &[SocketAddr]) -> Value {
        let addrs: Vec<String> = addrs.iter().map(ToString::to_string).collect();
        self.cmd(json!({"cmd": "join", "addrs": addrs}))
    }

    /// Kill the process without a goodbye.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// Path of the Go node's log.
    pub fn log_path(&self) -> &Path {
        &self.log
    }
}

impl Drop for GoPeer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// base64 for the harness's byte fields.
pub fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Inverse of [`b64`].
pub fn unb64(text: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(text).expect("harness sends valid base64")
}
