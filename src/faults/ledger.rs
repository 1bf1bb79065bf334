//! The persisted fault ledger: every fault that may be in effect, in a JSON file that
//! survives a crash of firedrill.
//!
//! Owns the file format; each change rewrites the whole file with [`durable::write`], so that
//! after a crash the file is either the old or the new version, never a torn one. It does not decide when entries are added or removed (the actor does: before a
//! fault touches anything, after its revert succeeded).

use std::{
    fs, io,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

use super::{Action, Subject};
use crate::durable;

/// Format version written into the file.
const VERSION: u32 = 1;

/// One fault that may be in effect: everything needed to revert it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Fault id.
    pub id: String,
    /// Target name (a group alias already resolved to a member).
    pub target: String,
    /// What was done.
    pub action: Action,
    /// When the entry was written, unix ms.
    pub injected_at_ms: i64,
    /// When the fault must be reverted at the latest, unix ms.
    pub revert_by_ms: i64,
    /// The backend (`backend` key) and what it resolved: pid or container id, network.
    #[serde(flatten)]
    pub subject: Subject,
}

#[derive(Serialize, Deserialize)]
struct LedgerFile {
    version: u32,
    faults: Vec<Entry>,
}

/// A ledger that could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file system operation failed.
    #[error("fault ledger {path}: {op}: {source}")]
    Io {
        path: PathBuf,
        op: &'static str,
        source: io::Error,
    },
    /// The file exists but is not a ledger; it is left alone for a human to look at.
    #[error("fault ledger {path} is unreadable ({message}); it may list faults still in effect: revert them by hand, then remove the file")]
    Corrupt { path: PathBuf, message: String },
}

impl Error {
    /// A bounded label value naming the variant.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Io { .. } => "io",
            Error::Corrupt { .. } => "corrupt",
        }
    }
}

/// The ledger file and its entries, in the order they were added.
#[derive(Debug)]
pub struct Ledger {
    path: PathBuf,
    entries: Vec<Entry>,
}

impl Ledger {
    /// Opens the ledger at `path`, creating its parent directory; a missing file is an empty
    /// ledger (nothing is written until the first change).
    pub fn open(path: &Path) -> Result<Ledger, Error> {
        let io_err = |op| {
            let path = path.to_path_buf();
            move |source| Error::Io { path, op, source }
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir).map_err(io_err("create directory"))?;
        }
        let entries = match fs::read(path) {
            Ok(bytes) => {
                let file: LedgerFile =
                    serde_json::from_slice(&bytes).map_err(|e| Error::Corrupt {
                        path: path.to_path_buf(),
                        message: e.to_string(),
                    })?;
                if file.version != VERSION {
                    return Err(Error::Corrupt {
                        path: path.to_path_buf(),
                        message: format!("version {} (expected {VERSION})", file.version),
                    });
                }
                file.faults
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(io_err("read")(e)),
        };
        Ok(Ledger {
            path: path.to_path_buf(),
            entries,
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every entry, oldest first.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The entry with id `id`.
    pub fn get(&self, id: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.id == id)
    }

    /// Adds `entry` and persists. When persisting fails the ledger is unchanged.
    pub fn insert(&mut self, entry: Entry) -> Result<(), Error> {
        self.entries.push(entry);
        if let Err(e) = self.persist() {
            self.entries.pop();
            return Err(e);
        }
        Ok(())
    }

    /// Removes the entry `id` and persists. The entry is gone from memory even when
    /// persisting fails: the file then still lists it until the next successful write, and a
    /// restart in between reverts it once more, which is harmless (reverts are idempotent).
    pub fn remove(&mut self, id: &str) -> Result<Option<Entry>, Error> {
        let Some(index) = self.entries.iter().position(|e| e.id == id) else {
            return Ok(None);
        };
        let entry = self.entries.remove(index);
        self.persist()?;
        Ok(Some(entry))
    }

    /// Writes every entry: temp file, fsync, rename over the ledger, fsync the directory.
    fn persist(&self) -> Result<(), Error> {
        let mut body = serde_json::to_vec_pretty(&LedgerFile {
            version: VERSION,
            faults: self.entries.clone(),
        })
        .expect("ledger entries serialize");
        body.push(b'\n');
        durable::write(&self.path, &body).map_err(|(op, source)| Error::Io {
            path: self.path.clone(),
            op,
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::faults::backend::{DockerSubject, ProcessSubject};

    fn entries() -> Vec<Entry> {
        vec![
            Entry {
                id: "f-1".into(),
                target: "kafka".into(),
                action: Action::Stop,
                injected_at_ms: 1_000,
                revert_by_ms: 31_000,
                subject: Subject::Process(ProcessSubject {
                    pid: 4242,
                    start_ticks: 99,
                    pid_file: ".stack/pids/kafka.pid".into(),
                    start: vec!["compose/local/stack".into(), "start".into(), "kafka".into()],
                }),
            },
            Entry {
                id: "f-2".into(),
                target: "broker".into(),
                action: Action::Disconnect,
                injected_at_ms: 2_000,
                revert_by_ms: 62_000,
                subject: Subject::Docker(DockerSubject {
                    container_id: "abc".into(),
                    container_name: "firedrill-kafka".into(),
                    service: None,
                    network: Some("firedrill".into()),
                    aliases: vec!["kafka".into()],
                }),
            },
        ]
    }

    #[test]
    fn entries_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/dir/faults.json");
        let mut ledger = Ledger::open(&path).unwrap();
        assert!(ledger.entries().is_empty());
        assert!(!path.exists(), "nothing is written before the first change");
        for entry in entries() {
            ledger.insert(entry).unwrap();
        }
        let reopened = Ledger::open(&path).unwrap();
        assert_eq!(reopened.entries(), entries());
        assert!(
            !durable::temp_path(&path).exists(),
            "the temp file was renamed"
        );

        let json: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        assert_eq!(json["faults"][0]["backend"], "process");
        assert_eq!(json["faults"][0]["pid"], 4242);
        assert_eq!(json["faults"][1]["container_id"], "abc");

        ledger.remove("f-1").unwrap();
        assert_eq!(ledger.remove("f-1").unwrap(), None);
        let reopened = Ledger::open(&path).unwrap();
        assert_eq!(reopened.entries(), &entries()[1..]);
        ledger.remove("f-2").unwrap();
        assert!(Ledger::open(&path).unwrap().entries().is_empty());
    }

    #[test]
    fn a_torn_temp_file_does_not_affect_the_ledger() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("faults.json");
        let mut ledger = Ledger::open(&path).unwrap();
        ledger.insert(entries().remove(0)).unwrap();
        // A crash while writing the next version leaves a partial temp file behind.
        fs::write(durable::temp_path(&path), b"{\"version\":1,\"fau").unwrap();
        assert_eq!(Ledger::open(&path).unwrap().entries(), &entries()[..1]);
        // The next write replaces it.
        ledger.insert(entries().remove(1)).unwrap();
        assert_eq!(Ledger::open(&path).unwrap().entries(), entries());
    }

    #[test]
    fn a_failed_write_leaves_the_ledger_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("faults.json");
        let mut ledger = Ledger::open(&path).unwrap();
        // A directory where the temp file should go makes the write fail.
        fs::create_dir(durable::temp_path(&path)).unwrap();
        let err = ledger.insert(entries().remove(0)).unwrap_err();
        assert_eq!(err.kind(), "io");
        assert!(ledger.entries().is_empty());
    }

    #[test]
    fn a_corrupt_ledger_is_refused_not_discarded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("faults.json");
        fs::write(&path, b"not json").unwrap();
        let err = Ledger::open(&path).unwrap_err();
        assert_eq!(err.kind(), "corrupt");
        assert!(err.to_string().contains("revert them by hand"), "{err}");
        assert_eq!(fs::read(&path).unwrap(), b"not json");
    }
}
