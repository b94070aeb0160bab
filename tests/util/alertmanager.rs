//! Real Alertmanager processes for mixed-cluster tests: Debian's `prometheus-alertmanager`
//! 0.25 (installed by `make deps`) and the latest release built from the Go module proxy.
//! A missing binary fails the test loudly; it never skips.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

/// Debian's Alertmanager 0.25.0 (memberlist 0.2.2).
pub const DEBIAN: &str = "/usr/bin/prometheus-alertmanager";
/// Debian's amtool 0.25.0.
pub const AMTOOL: &str = "/usr/bin/amtool";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The Debian binary, or a loud failure.
pub fn debian() -> PathBuf {
    let bin = PathBuf::from(DEBIAN);
    assert!(
        bin.exists(),
        "{DEBIAN} is missing: install Debian's prometheus-alertmanager (make deps)"
    );
    bin
}

/// The latest Alertmanager release, built once per test process.
pub fn latest() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let out = root().join("target/interop");
            let status = Command::new("bash")
                .arg(root().join("tests/interop/alertmanager/build-latest.sh"))
                .arg(&out)
                .status()
                .expect("bash runs build-latest.sh");
            assert!(
                status.success(),
                "building the latest Alertmanager failed (needs Go and the module proxy)"
            );
            out.join("alertmanager-latest")
        })
        .clone()
}

/// A loopback port free for both TCP and UDP right now.
pub fn free_port() -> u16 {
    loop {
        let tcp = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = tcp.local_addr().expect("addr").port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// A scratch directory under target/ for one test's files.
pub fn scratch(name: &str) -> PathBuf {
    let dir = root().join(format!("target/scratch/{name}-{}-{:x}", std::process::id(), rand_u64()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(Instant::now().elapsed().as_nanos() as u64);
    h.finish()
}

/// An Alertmanager-compatible server process: a stock Alertmanager or the `hearsay` binary.
pub struct Server {
    pub web: SocketAddr,
    pub cluster: SocketAddr,
    pub dir: PathBuf,
    child: Child,
    log: PathBuf,
}

/// Every process is a [`Server`]; the names say which one a test started.
pub type Alertmanager = Server;
/// See [`Server`].
pub type Hearsay = Server;

pub const CONFIG: &str = "route:\n  receiver: hook\nreceivers:\n  - name: hook\n";

/// Cluster flags both kinds take: fast gossip, probes and settling for tests.
pub const FAST_CLUSTER: [&str; 5] = [
    "--cluster.gossip-interval=50ms",
    "--cluster.pushpull-interval=2s",
    "--cluster.probe-interval=200ms",
    "--cluster.probe-timeout=100ms",
    "--cluster.settle-timeout=2s",
];

impl Server {
    /// Start Alertmanager `bin` with its state in `dir`, gossiping with `peers`.
    pub fn alertmanager(bin: &Path, dir: &Path, peers: &[SocketAddr]) -> Self {
        Self::alertmanager_with(bin, dir, peers, &[])
    }

    /// [`Self::alertmanager`] with more flags.
    pub fn alertmanager_with(
        bin: &Path,
        dir: &Path,
        peers: &[SocketAddr],
        args: &[String],
    ) -> Self {
        std::fs::create_dir_all(dir).expect("dir");
        std::fs::write(dir.join("am.yml"), CONFIG).expect("config");
        let mut cmd = Command::new(bin);
        cmd.arg(format!("--config.file={}", dir.join("am.yml").display())).arg("--log.level=debug");
        Self::spawn(cmd, dir, peers, "alertmanager", args)
    }

    /// Start the `hearsay` binary with its state in `dir`, gossiping with `peers`.
    pub fn hearsay(dir: &Path, peers: &[SocketAddr]) -> Self {
        Self::hearsay_with(dir, peers, &[])
    }

    /// [`Self::hearsay`] with more flags (given last, so they override the test defaults).
    pub fn hearsay_with(dir: &Path, peers: &[SocketAddr], args: &[String]) -> Self {
        let cmd = Command::new(env!("CARGO_BIN_EXE_hearsay"));
        Self::spawn(cmd, dir, peers, "hearsay", args)
    }

    /// Start `cmd` — a `hearsay` whose cluster settings the caller gave (a Grafana ini file,
    /// say) — adding only `--storage.path`, `--web.listen-address` and snapshots every second.
    /// `cluster` is recorded as the node's gossip address; nothing checks it.
    pub fn spawn_plain(mut cmd: Command, dir: &Path, cluster: SocketAddr, kind: &str) -> Self {
        std::fs::create_dir_all(dir).expect("dir");
        let web: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
        let log = dir.join(format!("{kind}.log"));
        cmd.arg(format!("--storage.path={}", dir.display()))
            .arg(format!("--web.listen-address={web}"))
            .arg("--data.maintenance-interval=1s")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log"));
        let child = cmd.spawn().unwrap_or_else(|e| panic!("starting {kind}: {e}"));
        let server = Self { web, cluster, dir: dir.to_path_buf(), child, log };
        let deadline = Instant::now() + Duration::from_secs(60);
        while get(server.web, "/-/ready").map(|(code, _)| code) != Some(200) {
            assert!(Instant::now() < deadline, "{kind} not ready; log:\n{}", server.log_tail());
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    /// The value of the sample `series` (name and labels exactly as exposed) in `/metrics`.
    pub fn metric(&self, series: &str) -> Option<f64> {
        let (_, body) = get(self.web, "/metrics")?;
        body.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
    }

    fn spawn(
        mut cmd: Command,
        dir: &Path,
        peers: &[SocketAddr],
        kind: &str,
        extra: &[String],
    ) -> Self {
        std::fs::create_dir_all(dir).expect("dir");
        let web: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
        let cluster: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
        let log = dir.join(format!("{kind}.log"));
        cmd.arg(format!("--storage.path={}", dir.display()))
            .arg(format!("--web.listen-address={web}"))
            .arg(format!("--cluster.listen-address={cluster}"))
            .arg(format!("--cluster.advertise-address={cluster}"))
            .args(FAST_CLUSTER)
            // Snapshots every second, so tests can watch the files instead of sleeping.
            .arg("--data.maintenance-interval=1s")
            .args(peers.iter().map(|p| format!("--cluster.peer={p}")))
            .args(extra)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log"));
        let child = cmd.spawn().unwrap_or_else(|e| panic!("starting {kind}: {e}"));
        let server = Self { web, cluster, dir: dir.to_path_buf(), child, log };
        let deadline = Instant::now() + Duration::from_secs(30);
        while get(server.web, "/-/ready").map(|(code, _)| code) != Some(200) {
            assert!(Instant::now() < deadline, "{kind} not ready; log:\n{}", server.log_tail());
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    /// The process ID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `amtool --alertmanager.url=…` with `args`.
    pub fn amtool(&self, args: &[&str]) -> Output {
        amtool(self.web, args)
    }

    /// The API's silences (`GET /api/v2/silences`).
    pub fn silences(&self) -> Value {
        api_silences(self.web)
    }

    /// Stop gracefully (SIGTERM): both kinds write their snapshots on the way out.
    pub fn stop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let status = self.child.wait().expect("wait");
        assert!(status.success(), "exited with {status}; log:\n{}", self.log_tail());
    }

    /// The last lines of its log.
    /// Everything the process logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `amtool` against any Alertmanager-compatible API at `web`.
pub fn amtool(web: SocketAddr, args: &[&str]) -> Output {
    assert!(
        Path::new(AMTOOL).exists(),
        "{AMTOOL} is missing: install Debian's prometheus-alertmanager (make deps)"
    );
    Command::new(AMTOOL)
        .arg(format!("--alertmanager.url=http://{web}"))
        .args(args)
        .output()
        .expect("amtool runs")
}

/// `GET /api/v2/silences` from any Alertmanager-compatible API.
pub fn api_silences(web: SocketAddr) -> Value {
    let (code, body) = get(web, "/api/v2/silences").expect("API answers");
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).expect("JSON")
}

/// A minimal HTTP/1.1 GET: status code and body.
pub fn get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    request(addr, "GET", path, "")
}

/// A minimal HTTP/1.1 POST of a JSON body: status code and body.
pub fn post(addr: SocketAddr, path: &str, json: &str) -> Option<(u16, String)> {
    request(addr, "POST", path, json)
}

fn request(addr: SocketAddr, method: &str, path: &str, body: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n")?;
    let code = head.split_whitespace().nth(1)?.parse().ok()?;
    let body = if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Some((code, body))
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else { break };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// Silence IDs with their state and creator, sorted by creator.
pub fn summary(silences: &Value) -> Vec<(String, String, String)> {
    let mut out: Vec<(String, String, String)> = silences
        .as_array()
        .expect("array")
        .iter()
        .map(|s| {
            (
                s["createdBy"].as_str().unwrap_or_default().to_owned(),
                s["id"].as_str().unwrap_or_default().to_owned(),
                s["status"]["state"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    out.sort();
    out
}

/// Add a silence with amtool; returns its ID.
pub fn add_silence(web: SocketAddr, matcher: &str, author: &str) -> String {
    let out = amtool(
        web,
        &["silence", "add", matcher, "-c", "mixed-cluster test", "-a", author, "-d", "1h"],
    );
    assert!(out.status.success(), "amtool add: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Expire a silence with amtool.
pub fn expire_silence(web: SocketAddr, id: &str) {
    let out = amtool(web, &["silence", "expire", id]);
    assert!(out.status.success(), "amtool expire: {}", String::from_utf8_lossy(&out.stderr));
}

/// Copy every regular file of `from` into `to`.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("dir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        if entry.file_type().expect("type").is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name())).expect("copy");
        }
    }
}
