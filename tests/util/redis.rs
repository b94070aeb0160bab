//! A real `redis-server` (Debian's `redis-server`, installed by `make deps`) on a loopback
//! port of the test's choosing, stopped when dropped. A missing binary fails loudly.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::certs::Leaf;

/// One private Redis.
pub struct RedisServer {
    pub port: u16,
    child: Child,
    /// Served over TLS only (no plain port): its certificate files.
    tls: Option<ServerTls>,
    extra: Vec<String>,
}

/// The TLS side of a TLS-only Redis.
#[derive(Clone, Debug)]
pub struct ServerTls {
    /// The server's certificate and key.
    pub leaf: Leaf,
    /// The CA client certificates must chain to (Redis needs one even with
    /// `--tls-auth-clients no`).
    pub ca: PathBuf,
    /// `--tls-auth-clients`: `yes` (mutual TLS), `no` or `optional`.
    pub auth_clients: &'static str,
}

fn spawn(port: u16, tls: Option<&ServerTls>, extra: &[String]) -> Child {
    let port = port.to_string();
    let mut cmd = Command::new("redis-server");
    cmd.args(["--bind", "127.0.0.1"]);
    match tls {
        None => cmd.args(["--port", &port]),
        Some(tls) => cmd
            .args(["--port", "0", "--tls-port", &port])
            .arg("--tls-cert-file")
            .arg(&tls.leaf.cert)
            .arg("--tls-key-file")
            .arg(&tls.leaf.key)
            .arg("--tls-ca-cert-file")
            .arg(&tls.ca)
            .args(["--tls-auth-clients", tls.auth_clients]),
    };
    cmd.args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server is required (Debian package redis-server; make deps)")
}

impl RedisServer {
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// A server with extra `redis-server` arguments (e.g. `--requirepass`).
    pub fn start_with(extra: &[&str]) -> Self {
        Self::start_on(None, extra)
    }

    /// A TLS-only server (`--port 0 --tls-port N`).
    pub fn start_tls(tls: ServerTls, extra: &[&str]) -> Self {
        Self::start_on(Some(tls), extra)
    }

    fn start_on(tls: Option<ServerTls>, extra: &[&str]) -> Self {
        let port = super::alertmanager::free_port();
        let extra: Vec<String> = extra.iter().map(|s| (*s).to_owned()).collect();
        let child = spawn(port, tls.as_ref(), &extra);
        let server = Self { port, child, tls, extra };
        server.wait_up();
        server
    }

    fn wait_up(&self) {
        match &self.tls {
            None => self.wait_ping(),
            Some(tls) => self.wait_tls_ping(tls),
        }
    }

    /// Until a `PING` through `redis-cli --tls` gets `PONG`: the handshake works too.
    fn wait_tls_ping(&self, tls: &ServerTls) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let pong =
                self.cli_tls(tls, &tls.leaf, &["PING"]).is_some_and(|out| out.trim() == "PONG");
            if pong {
                return;
            }
            assert!(Instant::now() < deadline, "redis-server did not answer TLS on {}", self.port);
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `redis-cli --tls` trusting the server's CA, with `client` as its certificate (the
    /// server's own will do when the CA signed it): its output, or `None` when it failed.
    pub fn cli_tls(&self, tls: &ServerTls, client: &Leaf, args: &[&str]) -> Option<String> {
        let out = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "--tls"])
            .arg("--cacert")
            .arg(&tls.ca)
            .arg("--cert")
            .arg(&client.cert)
            .arg("--key")
            .arg(&client.key)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("redis-cli is required (Debian package redis-tools; make deps)");
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Until a `PING` gets any reply (`+PONG`, or `-NOAUTH` from a server with a password).
    fn wait_ping(&self) {
        use std::io::{Read, Write};
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let replied =
                std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok_and(|mut s| {
                    let mut buf = [0u8; 1];
                    s.set_read_timeout(Some(Duration::from_secs(1))).is_ok()
                        && s.write_all(b"PING\r\n").is_ok()
                        && s.read(&mut buf).is_ok_and(|n| n == 1)
                });
            if replied {
                return;
            }
            assert!(Instant::now() < deadline, "redis-server did not answer on port {}", self.port);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kill the server (its data is gone: it keeps nothing on disk).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Start it again, empty, on the same port.
    pub fn restart(&mut self) {
        self.kill();
        self.child = spawn(self.port, self.tls.as_ref(), &self.extra);
        self.wait_up();
    }

    /// Its TLS settings, for a TLS-only server.
    pub fn tls(&self) -> Option<&ServerTls> {
        self.tls.as_ref()
    }

    /// `redis://` for a plain server, `rediss://` for a TLS-only one.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "rediss" } else { "redis" };
        format!("{scheme}://127.0.0.1:{}/0", self.port)
    }

    fn connection(&self) -> Option<redis::Connection> {
        let client = redis::Client::open(self.url()).ok()?;
        let mut conn = client.get_connection_with_timeout(Duration::from_secs(1)).ok()?;
        redis::cmd("PING").query::<String>(&mut conn).ok()?;
        Some(conn)
    }

    /// A command connection, for the test's own reads.
    pub fn client(&self) -> redis::Connection {
        self.connection().expect("redis answers")
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One Redis Sentinel (`redis-server <conf> --sentinel`) on a loopback port, watching the
/// master named `master` on `127.0.0.1:master_port`, stopped when dropped. Its configuration
/// file lives in a scratch directory: Sentinel rewrites it as it learns.
pub struct Sentinel {
    pub port: u16,
    child: Child,
}

impl Sentinel {
    /// A Sentinel with quorum 2 that calls a master down after 1 s of silence.
    pub fn start(master: &str, master_port: u16) -> Self {
        let port = super::alertmanager::free_port();
        let dir = super::alertmanager::scratch(&format!("sentinel-{port}"));
        let conf = dir.join("sentinel.conf");
        let text = format!(
            "port {port}\nbind 127.0.0.1\nprotected-mode no\ndir {dir}\n\
             sentinel monitor {master} 127.0.0.1 {master_port} 2\n\
             sentinel down-after-milliseconds {master} 1000\n\
             sentinel failover-timeout {master} 10000\n\
             sentinel parallel-syncs {master} 1\n",
            dir = dir.display()
        );
        std::fs::write(&conf, text).expect("write sentinel.conf");
        let child = Command::new("redis-server")
            .arg(&conf)
            .arg("--sentinel")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is required (Debian package redis-server; make deps)");
        let sentinel = Self { port, child };
        super::wait_for("the Sentinel answers", Duration::from_secs(10), || {
            sentinel.connection().is_some()
        });
        sentinel
    }

    /// `host:port`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn connection(&self) -> Option<redis::Connection> {
        let client = redis::Client::open(format!("redis://{}", self.addr())).ok()?;
        let mut conn = client.get_connection_with_timeout(Duration::from_secs(1)).ok()?;
        redis::cmd("PING").query::<String>(&mut conn).ok()?;
        Some(conn)
    }

    /// The master's port as this Sentinel names it now (`None` when it cannot say).
    pub fn master_port(&self, master: &str) -> Option<u16> {
        let mut conn = self.connection()?;
        let (_, port): (String, u16) = redis::cmd("SENTINEL")
            .arg("GET-MASTER-ADDR-BY-NAME")
            .arg(master)
            .query(&mut conn)
            .ok()?;
        Some(port)
    }

    /// How many other Sentinels and replicas of `master` this one knows.
    pub fn known(&self, master: &str) -> (usize, usize) {
        let Some(mut conn) = self.connection() else { return (0, 0) };
        let mut count = |what: &str| {
            redis::cmd("SENTINEL")
                .arg(what)
                .arg(master)
                .query::<Vec<redis::Value>>(&mut conn)
                .map_or(0, |v| v.len())
        };
        (count("SENTINELS"), count("REPLICAS"))
    }
}

impl Drop for Sentinel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A Redis Cluster of three masters (`redis-server --cluster-enabled yes`, no replicas) on
/// loopback ports, created with `redis-cli --cluster create`, each node's configuration file
/// (and the `nodes.conf` Redis keeps) in a scratch directory; stopped when dropped.
pub struct ClusterNodes {
    pub ports: Vec<u16>,
    children: Vec<Child>,
}

/// A port whose cluster bus port (+10000) is free too.
fn cluster_port() -> u16 {
    loop {
        let port = super::alertmanager::free_port();
        if port < 55_000 && std::net::TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
}

impl ClusterNodes {
    /// Three masters sharing the 16384 slots, `cluster_state:ok` on every one.
    pub fn start() -> Self {
        let ports: Vec<u16> = (0..3).map(|_| cluster_port()).collect();
        let dir = super::alertmanager::scratch("redis-cluster");
        let children = ports
            .iter()
            .map(|port| {
                let conf = dir.join(format!("redis-{port}.conf"));
                let text = format!(
                    "port {port}\nbind 127.0.0.1\nprotected-mode no\ndir {dir}\n\
                     cluster-enabled yes\ncluster-config-file nodes-{port}.conf\n\
                     cluster-node-timeout 2000\nsave \"\"\nappendonly no\n",
                    dir = dir.display()
                );
                std::fs::write(&conf, text).expect("write redis.conf");
                Command::new("redis-server")
                    .arg(&conf)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("redis-server is required (Debian package redis-server; make deps)")
            })
            .collect();
        let nodes = Self { ports, children };
        super::wait_for("the cluster nodes answer", Duration::from_secs(10), || {
            nodes.ports.iter().all(|p| nodes.cli(*p, &["PING"]).is_some_and(|o| o.trim() == "PONG"))
        });
        let addrs: Vec<String> = nodes.addrs();
        let out = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .expect("redis-cli is required (Debian package redis-tools; make deps)");
        assert!(
            out.status.success(),
            "redis-cli --cluster create: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        nodes.wait_ok();
        nodes
    }

    /// Until every node says `cluster_state:ok`.
    pub fn wait_ok(&self) {
        super::wait_for("cluster_state:ok on every node", Duration::from_secs(30), || {
            self.ports.iter().all(|p| {
                self.cli(*p, &["CLUSTER", "INFO"]).is_some_and(|o| o.contains("cluster_state:ok"))
            })
        });
    }

    /// `127.0.0.1:port` of every node.
    pub fn addrs(&self) -> Vec<String> {
        self.ports.iter().map(|p| format!("127.0.0.1:{p}")).collect()
    }

    /// `redis-cli -p port args…` (no `-c`: redirections are the caller's): its output, or
    /// `None` when it failed.
    pub fn cli(&self, port: u16, args: &[&str]) -> Option<String> {
        let out = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &port.to_string()])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("redis-cli is required (Debian package redis-tools; make deps)");
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The port of the master owning `slot`.
    pub fn owner(&self, slot: u16) -> u16 {
        let port = self.ports[0];
        // `CLUSTER SLOTS`: start, end, then the master (host, port, id) first.
        let mut conn = redis::Client::open(format!("redis://127.0.0.1:{port}"))
            .and_then(|c| c.get_connection())
            .expect("a cluster node answers");
        let slots: Vec<Vec<redis::Value>> =
            redis::cmd("CLUSTER").arg("SLOTS").query(&mut conn).expect("CLUSTER SLOTS");
        let int = |v: &redis::Value| match v {
            redis::Value::Int(n) => u16::try_from(*n).ok(),
            _ => None,
        };
        slots
            .iter()
            .find_map(|range| match range.as_slice() {
                [first, last, redis::Value::Array(master), ..]
                    if (int(first)?..=int(last)?).contains(&slot) =>
                {
                    master.get(1).and_then(int)
                }
                _ => None,
            })
            .expect("every slot is served")
    }

    /// The node ID of the node on `port`.
    pub fn id(&self, port: u16) -> String {
        self.cli(port, &["CLUSTER", "MYID"]).expect("CLUSTER MYID").trim().to_owned()
    }
}

impl Drop for ClusterNodes {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
