//! The write-ahead journal of a node's local writes, so a process killed between two
//! snapshots comes back with every write it acknowledged.
//!
//! Alertmanager writes its states only at maintenance (every 15 minutes) and at shutdown; a
//! killed process loses what it wrote since, unless a peer received it first. hearsay also
//! appends every local write of a state that has a snapshot file — the very payload it sends
//! to peers — to `<dir>/<file>.journal.<n>` before the host call returns. A start loads the
//! snapshot and merges the journal segments on top; merges are idempotent, so an entry the
//! snapshot already holds changes nothing.
//!
//! A maintenance rotates a state's journal under the states' lock, in the same critical
//! section that marshals the snapshot: everything in the segments up to the rotation is in
//! the snapshot, so once the snapshot file is safely written those segments are deleted.
//! A snapshot that fails to write leaves them for the next start.
//!
//! Appends are `write(2)`s without `fsync`: they survive the process (a crash, `kill -9`, the
//! OOM killer), not the machine losing power — as the peers hold every write too, a whole
//! machine lost is what replication is for.
//!
//! A record is `len: u32 LE | crc32(data): u32 LE | data`. A record cut short or failing its
//! checksum ends the replay of that segment with a warning: only the last write before a
//! crash can be cut, and it was never acknowledged.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// A segment holding more than this asks for a maintenance, whose snapshot lets it go: the
/// journal of a busy state stays bounded however long the maintenance interval is.
pub(crate) const SEGMENT_SOFT_LIMIT: u64 = 64 << 20;
/// A record longer than this is not one hearsay wrote: replay stops there.
const RECORD_MAX: usize = 64 << 20;
const HEADER: usize = 8;

/// The journals of every state that has a snapshot file.
#[derive(Debug)]
pub(crate) struct Journal {
    dir: PathBuf,
    /// By state key.
    states: BTreeMap<String, StateJournal>,
}

#[derive(Debug)]
struct StateJournal {
    file: String,
    /// The segment appended to, opened on the first append after a start or a rotation.
    open: Option<(u64, File)>,
    /// Bytes in the open segment.
    open_len: u64,
    /// The number the next segment gets.
    next: u64,
}

/// What [`Journal::append`] says.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Appended {
    /// The key has no journal (a host-owned state, or a state without a snapshot file).
    NotJournaled,
    /// Written.
    Written {
        /// The segment is past [`SEGMENT_SOFT_LIMIT`]: a maintenance should run.
        full: bool,
    },
}

impl Journal {
    /// The journals of `files` (`(state key, snapshot file)`) in `dir`. Segments already there
    /// (from before this start, replayed by [`replay`]) are kept until the first snapshot of
    /// their state is written.
    pub(crate) fn open(dir: &Path, files: &[(String, String)]) -> io::Result<Self> {
        let names = segments_in(dir)?;
        let states = files
            .iter()
            .map(|(key, file)| {
                let next = names.get(file.as_str()).and_then(|s| s.last()).map_or(1, |n| n + 1);
                (key.clone(), StateJournal { file: file.clone(), open: None, open_len: 0, next })
            })
            .collect();
        Ok(Self { dir: dir.to_owned(), states })
    }

    /// Append one local write of the state under `key`.
    pub(crate) fn append(&mut self, key: &str, data: &[u8]) -> io::Result<Appended> {
        let Some(state) = self.states.get_mut(key) else { return Ok(Appended::NotJournaled) };
        let len = u32::try_from(data.len())
            .ok()
            .filter(|l| *l as usize <= RECORD_MAX)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "record too large"))?;
        if state.open.is_none() {
            let seq = state.next;
            let path = self.dir.join(segment_name(&state.file, seq));
            let file = OpenOptions::new().create(true).append(true).open(&path)?;
            state.next += 1;
            state.open = Some((seq, file));
            state.open_len = 0;
        }
        let Some((_, file)) = state.open.as_mut() else { unreachable!("opened above") };
        let mut record = Vec::with_capacity(HEADER + data.len());
        record.extend_from_slice(&len.to_le_bytes());
        record.extend_from_slice(&crc32fast::hash(data).to_le_bytes());
        record.extend_from_slice(data);
        // One write per record: a process killed mid-call leaves the record whole or cut,
        // never interleaved with another.
        file.write_all(&record)?;
        state.open_len += record.len() as u64;
        Ok(Appended::Written { full: state.open_len > SEGMENT_SOFT_LIMIT })
    }

    /// Close the open segment of `key`'s state; the next append opens a new one. Call with the
    /// states' lock held, where the snapshot is marshalled. Returns the highest segment number
    /// the snapshot covers, for [`Journal::discard_through`].
    pub(crate) fn rotate(&mut self, key: &str) -> Option<u64> {
        let state = self.states.get_mut(key)?;
        state.open = None;
        state.open_len = 0;
        Some(state.next - 1)
    }

    /// The snapshot of `key`'s state covering segments up to `seq` is on disk: delete them.
    pub(crate) fn discard_through(&self, key: &str, seq: u64) -> io::Result<()> {
        let Some(state) = self.states.get(key) else { return Ok(()) };
        let names = segments_in(&self.dir)?;
        for n in names.get(state.file.as_str()).into_iter().flatten().filter(|n| **n <= seq) {
            fs::remove_file(self.dir.join(segment_name(&state.file, *n)))?;
        }
        Ok(())
    }
}

/// Every record of the journal segments of snapshot `file` in `dir`, oldest first, handed to
/// `merge` (the state's own merge). Returns how many were merged. A segment that cannot be
/// read is an error naming it; a cut or corrupt record ends its segment with a warning.
pub(crate) fn replay(
    dir: &Path,
    file: &str,
    mut merge: impl FnMut(&[u8]) -> Result<(), String>,
) -> io::Result<usize> {
    let mut merged = 0;
    let names = match segments_in(dir) {
        Ok(names) => names,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    for seq in names.get(file).into_iter().flatten() {
        let path = dir.join(segment_name(file, *seq));
        let bytes = fs::read(&path)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        let mut at = 0;
        while at < bytes.len() {
            match record_at(&bytes, at) {
                Some(data) => {
                    if let Err(e) = merge(data) {
                        log::warn!(
                            "{}: the record at byte {at} does not merge ({e}); skipped",
                            path.display()
                        );
                    } else {
                        merged += 1;
                    }
                    at += HEADER + data.len();
                }
                None => {
                    log::warn!(
                        "{}: the record at byte {at} is cut short or corrupt (the process \
                         stopped while writing it); the {} bytes from there are ignored",
                        path.display(),
                        bytes.len() - at
                    );
                    break;
                }
            }
        }
    }
    Ok(merged)
}

/// The record starting at `at`, if it is whole and its checksum holds.
fn record_at(bytes: &[u8], at: usize) -> Option<&[u8]> {
    let header = bytes.get(at..at + HEADER)?;
    let len = u32::from_le_bytes(header[..4].try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(header[4..].try_into().ok()?);
    if len > RECORD_MAX {
        return None;
    }
    let data = bytes.get(at + HEADER..at + HEADER + len)?;
    (crc32fast::hash(data) == crc).then_some(data)
}

fn segment_name(file: &str, seq: u64) -> String {
    format!("{file}.journal.{seq}")
}

/// Segment numbers in `dir`, by snapshot file name, ascending.
fn segments_in(dir: &Path) -> io::Result<BTreeMap<String, Vec<u64>>> {
    let mut found: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some((file, seq)) = name.rsplit_once(".journal.") else { continue };
        // Only the names this module writes: decimal, no sign, no leading zero.
        if seq.is_empty() || seq.starts_with('0') || !seq.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(seq) = seq.parse() else { continue };
        found.entry(file.to_owned()).or_default().push(seq);
    }
    for seqs in found.values_mut() {
        seqs.sort_unstable();
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("hearsay-journal-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn files() -> Vec<(String, String)> {
        vec![("nfl".into(), "nflog".into()), ("sil".into(), "silences".into())]
    }

    fn records(dir: &Path, file: &str) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        replay(dir, file, |d| {
            out.push(d.to_vec());
            Ok(())
        })
        .unwrap();
        out
    }

    #[test]
    fn appends_replay_in_order_per_state_across_restarts() {
        let dir = scratch("order");
        let mut j = Journal::open(&dir, &files()).unwrap();
        assert_eq!(j.append("nfl", b"a").unwrap(), Appended::Written { full: false });
        j.append("sil", b"s").unwrap();
        j.append("nfl", b"b").unwrap();
        assert_eq!(j.append("host", b"x").unwrap(), Appended::NotJournaled);
        drop(j);
        // A restart appends to a new segment after the old ones.
        let mut j = Journal::open(&dir, &files()).unwrap();
        j.append("nfl", b"c").unwrap();
        assert_eq!(records(&dir, "nflog"), [b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]);
        assert_eq!(records(&dir, "silences"), [b"s".to_vec()]);
        assert!(records(&dir, "host").is_empty());
    }

    #[test]
    fn a_snapshot_discards_what_it_covers_and_nothing_after() {
        let dir = scratch("rotate");
        let mut j = Journal::open(&dir, &files()).unwrap();
        j.append("nfl", b"old").unwrap();
        let covered = j.rotate("nfl").unwrap();
        j.append("nfl", b"new").unwrap();
        j.discard_through("nfl", covered).unwrap();
        assert_eq!(records(&dir, "nflog"), [b"new".to_vec()]);
        // A rotation with nothing appended since covers the same segments again.
        let covered = j.rotate("nfl").unwrap();
        j.discard_through("nfl", covered).unwrap();
        assert!(records(&dir, "nflog").is_empty());
    }

    #[test]
    fn a_record_cut_by_a_crash_ends_the_replay_of_its_segment() {
        let dir = scratch("torn");
        let mut j = Journal::open(&dir, &files()).unwrap();
        j.append("nfl", b"whole").unwrap();
        j.append("nfl", b"cut short").unwrap();
        drop(j);
        let path = dir.join(segment_name("nflog", 1));
        let len = fs::metadata(&path).unwrap().len();
        OpenOptions::new().write(true).open(&path).unwrap().set_len(len - 3).unwrap();
        assert_eq!(records(&dir, "nflog"), [b"whole".to_vec()]);
        // A flipped byte fails the checksum the same way.
        let mut bytes = fs::read(&path).unwrap();
        bytes[HEADER] ^= 1;
        fs::write(&path, bytes).unwrap();
        assert!(records(&dir, "nflog").is_empty());
    }

    #[test]
    fn names_it_did_not_write_are_left_alone() {
        let dir = scratch("names");
        for name in
            ["nflog.journal.01", "nflog.journal.", "nflog.journal.x", "nflog.0123456789abcdef"]
        {
            fs::write(dir.join(name), b"junk").unwrap();
        }
        assert!(records(&dir, "nflog").is_empty());
        let mut j = Journal::open(&dir, &files()).unwrap();
        j.append("nfl", b"a").unwrap();
        let covered = j.rotate("nfl").unwrap();
        j.discard_through("nfl", covered).unwrap();
        assert!(dir.join("nflog.journal.01").exists());
    }
}
