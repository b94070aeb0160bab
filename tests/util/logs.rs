//! The log lines hearsay writes, captured for the tests that check them. Installed once per
//! test binary; lines from every test in the binary land in the same list, so a test looks
//! for lines that name something only it uses.

use std::sync::{Mutex, Once};

static LINES: Mutex<Vec<String>> = Mutex::new(Vec::new());
static INSTALL: Once = Once::new();

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        let line = format!("{} {}", record.level(), record.args());
        LINES.lock().expect("not poisoned").push(line);
    }

    fn flush(&self) {}
}

/// Start capturing (idempotent).
pub fn capture() {
    INSTALL.call_once(|| {
        log::set_logger(&Capture).expect("the only logger of this test binary");
        log::set_max_level(log::LevelFilter::Info);
    });
}

/// The captured lines containing `needle`.
pub fn matching(needle: &str) -> Vec<String> {
    LINES.lock().expect("not poisoned").iter().filter(|l| l.contains(needle)).cloned().collect()
}
