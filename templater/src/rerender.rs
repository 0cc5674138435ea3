//! Re-render requests: SIGHUP, and edits to template files (watched with notify through their
//! directories, since editors replace files rather than write them in place).

use std::collections::HashSet;
use std::path::PathBuf;

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::render::TemplateSpec;

/// Why a re-render was asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rerender {
    Signal,
    Edit,
}

/// Starts the SIGHUP listener and the file watcher; keep the answer alive while watching.
pub fn spawn(
    specs: &[TemplateSpec],
    tx: mpsc::Sender<Rerender>,
    token: CancellationToken,
) -> Option<notify::RecommendedWatcher> {
    let sig_tx = tx.clone();
    tokio::spawn(async move {
        let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        else {
            return;
        };
        loop {
            tokio::select! {
                _ = token.cancelled() => return,
                s = hup.recv() => {
                    if s.is_none() { return }
                    tracing::info!("SIGHUP: re-reading templates and re-rendering");
                    let _ = sig_tx.try_send(Rerender::Signal);
                }
            }
        }
    });
    let files: HashSet<PathBuf> = specs
        .iter()
        .filter_map(|s| s.source.clone())
        .filter_map(|p| std::fs::canonicalize(&p).ok().or(Some(p)))
        .collect();
    if files.is_empty() {
        return None;
    }
    let watched = files.clone();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let Ok(event) = event else { return };
        if event.kind.is_access() {
            return;
        }
        if event.paths.iter().any(|p| {
            watched.contains(p) || std::fs::canonicalize(p).is_ok_and(|c| watched.contains(&c))
        }) {
            let _ = tx.try_send(Rerender::Edit);
        }
    })
    .map_err(|e| tracing::warn!(error = %e, "cannot watch template files; SIGHUP still reloads"))
    .ok()?;
    let dirs: HashSet<PathBuf> = files
        .iter()
        .filter_map(|f| f.parent().map(PathBuf::from))
        .collect();
    for dir in dirs {
        if let Err(e) = watcher.watch(&dir, RecursiveMode::NonRecursive) {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot watch template directory");
        }
    }
    Some(watcher)
}
