//! A real `redis-server` (Debian's `redis-server`, installed by `make deps`) on a loopback
//! port of the test's choosing, stopped when dropped. A missing binary fails loudly.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One private Redis.
pub struct RedisServer {
    pub port: u16,
    child: Child,
}

fn spawn(port: u16, extra: &[&str]) -> Child {
    Command::new("redis-server")
        .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
        .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
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
        let port = super::alertmanager::free_port();
        let server = Self { port, child: spawn(port, extra) };
        server.wait_up();
        server
    }

    /// Until a `PING` gets any reply (`+PONG`, or `-NOAUTH` from a server with a password).
    fn wait_up(&self) {
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
        self.child = spawn(self.port, &[]);
        self.wait_up();
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
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
