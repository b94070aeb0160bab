//! State snapshots on disk, in Alertmanager's file format and way (its `Maintenance` loops):
//! `<dir>/nflog` and `<dir>/silences` hold exactly what a push/pull carries for that
//! state. Writes are atomic — a temp file beside the target, fsync, rename, then an fsync of
//! the directory so the rename itself survives a crash (Alertmanager skips that last step).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::core::state::DecodeError;

/// A snapshot file that could not be read back. The file is left as it was.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotError {
    /// Reading failed, or (at start) the directory cannot be written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The contents are not a valid snapshot; the offset says where.
    #[error("{path}: {source}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong, and at which byte.
        #[source]
        source: DecodeError,
    },
}

/// Write `bytes` to `dir/name` atomically. Returns the size written.
pub fn write(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<u64> {
    fs::create_dir_all(dir)?;
    let target = dir.join(name);
    let tmp = dir.join(format!("{name}.{:016x}", rand::random::<u64>()));
    let result = (|| {
        let mut file = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, &target)?;
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map(|()| bytes.len() as u64)
}

/// Check at start that snapshots can be written to `dir` (created if missing): a probe file
/// is created and removed. Without this an unwritable directory shows only later, as a
/// failed maintenance run, and every change since start is lost at the next restart.
pub fn check_writable(dir: &Path) -> Result<(), SnapshotError> {
    let io = |source| SnapshotError::Io { path: dir.to_path_buf(), source };
    fs::create_dir_all(dir).map_err(io)?;
    let probe = dir.join(format!(".hearsay-write-check.{:016x}", rand::random::<u64>()));
    OpenOptions::new().write(true).create_new(true).open(&probe).map_err(io)?;
    fs::remove_file(&probe).map_err(io)
}

/// Read `dir/name`; `None` when it does not exist (a first start).
pub fn read(dir: &Path, name: &str) -> Result<Option<Vec<u8>>, SnapshotError> {
    let path = dir.join(name);
    match fs::read(&path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(SnapshotError::Io { path, source }),
    }
}

/// Read and decode `dir/name` with `load`, naming the file in any error.
pub fn load<T>(
    dir: &Path,
    name: &str,
    load: impl FnOnce(&[u8]) -> Result<T, DecodeError>,
) -> Result<Option<T>, SnapshotError> {
    let Some(bytes) = read(dir, name)? else { return Ok(None) };
    load(&bytes).map(Some).map_err(|source| SnapshotError::Corrupt { path: dir.join(name), source })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::state::delimited;

    fn scratch() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("hearsay-snap-{:016x}", rand::random::<u64>()));
        fs::create_dir_all(&dir).expect("temp dir");
        dir
    }

    #[test]
    fn a_directory_that_cannot_be_written_is_refused() {
        let dir = scratch();
        check_writable(&dir.join("new/sub")).expect("created when missing");
        assert!(dir.join("new/sub").is_dir());
        assert_eq!(fs::read_dir(dir.join("new/sub")).expect("dir").count(), 0, "probe removed");
        // Under a regular file: refused even for root, who ignores permission bits.
        fs::write(dir.join("file"), b"x").expect("file");
        let e = check_writable(&dir.join("file/sub")).unwrap_err();
        assert!(matches!(e, SnapshotError::Io { ref path, .. } if path.ends_with("file/sub")));
        fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn writes_replace_atomically_and_leave_no_temp_files() {
        let dir = scratch();
        assert_eq!(write(&dir, "nflog", b"first").expect("write"), 5);
        write(&dir, "nflog", b"second").expect("write");
        assert_eq!(read(&dir, "nflog").expect("read"), Some(b"second".to_vec()));
        let names: Vec<_> =
            fs::read_dir(&dir).expect("list").map(|e| e.expect("entry").file_name()).collect();
        assert_eq!(names, vec!["nflog"]);
        fs::remove_dir_all(dir).expect("cleanup");
    }

    #[test]
    fn a_missing_file_is_a_first_start() {
        let dir = scratch();
        assert!(load(&dir, "silences", |_| Ok(())).expect("no error").is_none());
        fs::remove_dir_all(dir).expect("cleanup");
    }

    #[test]
    fn a_corrupt_file_names_itself_and_the_offset_and_is_left_alone() {
        let dir = scratch();
        let mut bytes = Vec::new();
        delimited::push(&mut bytes, b"ok");
        bytes.extend_from_slice(&[9, 1]);
        fs::write(dir.join("nflog"), &bytes).expect("write");
        let err = load(&dir, "nflog", |b| delimited::split(b).map(|_| ())).expect_err("corrupt");
        let text = err.to_string();
        assert!(text.contains("nflog") && text.contains("byte 3"), "{text}");
        assert_eq!(fs::read(dir.join("nflog")).expect("still there"), bytes);
        fs::remove_dir_all(dir).expect("cleanup");
    }
}
