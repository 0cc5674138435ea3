//! Installing rendered files all or none. Every changed file is first written to a fresh temp
//! file beside it (a random name, created exclusively, never through a symlink) and fsynced;
//! only when all are written is each previous file journaled as a hard link (no copy: after
//! the rename it still names the old contents) and the temp renamed over it. Any error on the
//! way puts every file of the pass back and leaves nothing behind. The caller then checks the
//! result and either [`Staged::commit`]s or [`Staged::rollback`]s; a journal left by a crash is
//! rolled back by [`recover`] at start-up.

use std::fs::OpenOptions;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

/// A file that could not be written, renamed or journaled.
#[derive(Debug, thiserror::Error)]
#[error("writing {path}: {source}")]
pub struct InstallError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> InstallError + '_ {
    move |source| InstallError {
        path: path.to_path_buf(),
        source,
    }
}

/// `.<name>.<suffix>` beside `dest`: never matched by an `include *.conf`.
fn sibling(dest: &Path, suffix: &str) -> PathBuf {
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    dest.with_file_name(format!(".{name}.{suffix}"))
}

fn journal_of(dest: &Path) -> PathBuf {
    sibling(dest, "swarmgate-prev")
}

fn absent_marker_of(dest: &Path) -> PathBuf {
    sibling(dest, "swarmgate-absent")
}

const TEMP_SUFFIX: &str = "swarmgate-tmp-";

/// Creates `path` exclusively, refusing to follow a symlink planted there.
fn create_exclusive(path: &Path) -> std::io::Result<std::fs::File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

/// A random suffix (std's hasher keys are random per process and per call).
fn random_suffix() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .elapsed()
            .map_or(0, |d| d.as_nanos()),
    );
    format!("{:016x}", h.finish())
}

/// Writes `bytes` to a new fsynced temp file beside `dest`, answering its path.
fn write_temp(dest: &Path, bytes: &[u8]) -> Result<PathBuf, InstallError> {
    let tmp = sibling(dest, &format!("{TEMP_SUFFIX}{}", random_suffix()));
    let mut f = create_exclusive(&tmp).map_err(io(&tmp))?;
    let written = f.write_all(bytes).and_then(|()| f.sync_all());
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(io(&tmp)(e));
    }
    Ok(tmp)
}

/// Makes renames and links in the directories of `paths` durable.
fn sync_dirs<'a>(paths: impl IntoIterator<Item = &'a PathBuf>) {
    let dirs: std::collections::BTreeSet<&Path> =
        paths.into_iter().filter_map(|p| p.parent()).collect();
    for dir in dirs {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
}

/// Files of a pass renamed into place, not yet confirmed.
#[derive(Debug)]
#[must_use = "a staged install must be committed or rolled back"]
pub struct Staged {
    pub changed: Vec<PathBuf>,
}

impl Staged {
    /// The files stay: their journals go.
    pub fn commit(self) {
        for d in &self.changed {
            let _ = std::fs::remove_file(journal_of(d));
            let _ = std::fs::remove_file(absent_marker_of(d));
        }
        sync_dirs(&self.changed);
    }

    /// Every file goes back to what it was before the pass.
    pub fn rollback(self) {
        recover(&self.changed);
    }
}

/// Installs the files of `files` whose bytes differ from what is on disk (see the module doc).
pub fn stage(files: &[(PathBuf, Vec<u8>)]) -> Result<Staged, InstallError> {
    let changed: Vec<&(PathBuf, Vec<u8>)> = files
        .iter()
        .filter(|(dest, bytes)| std::fs::read(dest).ok().as_deref() != Some(bytes.as_slice()))
        .collect();
    let mut temps = Vec::new();
    for (dest, bytes) in &changed {
        match write_temp(dest, bytes) {
            Ok(tmp) => temps.push((dest.clone(), tmp)),
            Err(e) => {
                for (_, tmp) in &temps {
                    let _ = std::fs::remove_file(tmp);
                }
                return Err(e);
            }
        }
    }
    let mut staged = Staged {
        changed: Vec::new(),
    };
    for (i, (dest, tmp)) in temps.iter().enumerate() {
        if let Err(e) = swap_in(dest, tmp) {
            for (_, later) in &temps[i..] {
                let _ = std::fs::remove_file(later);
            }
            staged.changed.push(dest.clone());
            staged.rollback();
            return Err(e);
        }
        staged.changed.push(dest.clone());
    }
    sync_dirs(&staged.changed);
    Ok(staged)
}

/// Journals what `dest` holds (or that it did not exist), then renames `tmp` over it.
fn swap_in(dest: &Path, tmp: &Path) -> Result<(), InstallError> {
    let journal = journal_of(dest);
    let absent = absent_marker_of(dest);
    let _ = std::fs::remove_file(&journal);
    let _ = std::fs::remove_file(&absent);
    match std::fs::symlink_metadata(dest) {
        Ok(_) => std::fs::hard_link(dest, &journal).map_err(io(&journal))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            drop(create_exclusive(&absent).map_err(io(&absent))?)
        }
        Err(e) => return Err(io(dest)(e)),
    }
    std::fs::rename(tmp, dest).map_err(io(dest))
}

/// Rolls back installs that were not confirmed (a failed check, or a crash): each journal is
/// renamed back over its file; a file that did not exist before is removed; temp files left
/// by a crash are removed.
pub fn recover(dests: &[PathBuf]) -> Vec<PathBuf> {
    let mut restored = Vec::new();
    for dest in dests {
        let journal = journal_of(dest);
        let absent = absent_marker_of(dest);
        if journal.exists() {
            if std::fs::rename(&journal, dest).is_ok() {
                restored.push(dest.clone());
            }
        } else if absent.exists() {
            let _ = std::fs::remove_file(dest);
            restored.push(dest.clone());
        }
        let _ = std::fs::remove_file(&absent);
        remove_temps(dest);
    }
    sync_dirs(dests);
    restored
}

fn remove_temps(dest: &Path) {
    let (Some(dir), Some(name)) = (dest.parent(), dest.file_name()) else {
        return;
    };
    let prefix = format!(".{}.{TEMP_SUFFIX}", name.to_string_lossy());
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

#[cfg(test)]
#[path = "install_tests.rs"]
mod tests;
