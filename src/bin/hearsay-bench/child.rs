//! Scenarios that must measure a fresh process run in a child: this binary re-executed with a
//! marker in the environment, printing its figures as JSON lines for the parent to add.
//!
//! `memory` reads the process's resident set: in a process where `dedup` ran first the
//! allocator hands back what dedup freed, and the same state looked a third its size.

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};

use crate::report::{self, Figure};

/// The marker: its value names the one scenario the child runs.
const MARKER: &str = "HEARSAY_BENCH_CHILD";
/// Lines of the child's stderr quoted when it fails.
const TAIL_LINES: usize = 20;

/// Whether this process is the child started to run `scenario`.
pub(crate) fn is_child(scenario: &str) -> bool {
    std::env::var(MARKER).is_ok_and(|v| v == scenario)
}

/// Run `scenario` alone in a fresh copy of this binary and add the figures it prints.
pub(crate) fn run(scenario: &'static str, out: &mut Vec<Figure>) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| format!("own executable: {e}"))?;
    let mut child = Command::new(&exe)
        .args([scenario, "--json"])
        .env(MARKER, scenario)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{}: {e}", exe.display()))?;
    // The child's progress is passed on as it comes; its last lines are kept for an error.
    let stderr = child.stderr.take().ok_or("no stderr pipe")?;
    let echo = std::thread::spawn(move || {
        let mut tail = std::collections::VecDeque::with_capacity(TAIL_LINES);
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("  {line}");
            if tail.len() == TAIL_LINES {
                tail.pop_front();
            }
            tail.push_back(line);
        }
        Vec::from(tail).join("\n")
    });
    let stdout = child.stdout.take().ok_or("no stdout pipe")?;
    let lines: Vec<String> = BufReader::new(stdout).lines().map_while(Result::ok).collect();
    let status = child.wait().map_err(|e| format!("waiting for the {scenario} child: {e}"))?;
    let tail = echo.join().unwrap_or_default();
    let failed = |why: &str| {
        format!("the {scenario} child process {why} ({status}); its stderr ends:\n{tail}")
    };
    if !status.success() {
        return Err(failed("failed"));
    }
    let figures = lines
        .iter()
        .filter(|l| !l.trim().is_empty())
        .map(|l| report::parse_json(l))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| failed(&format!("printed something else than figures: {e}")))?;
    if figures.is_empty() {
        return Err(failed("printed no figure"));
    }
    out.extend(figures);
    Ok(())
}
