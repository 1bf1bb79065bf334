//! Durable file replacement: after [`write`] returns, the file holds the new content and keeps
//! it through a crash or power loss; if it fails (or firedrill dies inside it) the file still
//! holds its old content, never a torn mix.
//!
//! How: the content goes to a temporary file beside the target (a rename is atomic only within
//! one file system), which is fsynced, renamed over the target, and followed by an fsync of the
//! directory so that the rename itself is on disk. Used by the fault ledger (which must be on
//! disk before a fault touches anything) and by drill reports. Does not own file formats.

use std::{
    fs::{self, File},
    io::{self, Write},
    path::{Path, PathBuf},
};

/// Replaces `path` with `body`; on failure, the step that failed and its error.
pub fn write(path: &Path, body: &[u8]) -> Result<(), (&'static str, io::Error)> {
    let tmp = temp_path(path);
    let mut file = File::create(&tmp).map_err(|e| ("create temp file", e))?;
    file.write_all(body).map_err(|e| ("write temp file", e))?;
    file.sync_all().map_err(|e| ("fsync temp file", e))?;
    drop(file);
    fs::rename(&tmp, path).map_err(|e| ("rename temp file", e))?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| ("fsync directory", e))
}

/// `faults.json` -> `faults.json.tmp`, beside it.
pub fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_file_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("report.json");
        write(&path, b"old").unwrap();
        write(&path, b"new").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new");
        assert!(!temp_path(&path).exists());
    }

    #[test]
    fn a_failed_write_keeps_the_old_content_and_names_the_step() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("report.json");
        write(&path, b"old").unwrap();
        // A directory where the temp file would go: creating it fails.
        fs::create_dir(temp_path(&path)).unwrap();
        let (step, _) = write(&path, b"new").unwrap_err();
        assert_eq!(step, "create temp file");
        assert_eq!(fs::read(&path).unwrap(), b"old");
    }
}
