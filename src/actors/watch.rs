//! Watching a config file the ways deployments replace it. Watching the
//! file itself misses editors' save-by-rename, so its directory is
//! watched; and that misses two more:
//!
//! - the directory (or one above it) removed and created again (a volume
//!   remounted, a provisioning tool re-creating `/etc/discoveryd`): every
//!   directory above is watched for the name on the way down, and the
//!   watches are rebuilt;
//! - a symlink chain swapped underneath, as a Kubernetes ConfigMap does
//!   (`discoveryd.toml -> ..data/discoveryd.toml`, with `..data` renamed
//!   over to a new directory): every hop of the chain is watched.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use notify::{RecommendedWatcher, RecursiveMode, Watcher as _};

/// How many symlinks a chain may have before the rest is not followed.
const MAX_HOPS: usize = 8;

/// The directories to watch, each with the names in it whose events
/// matter.
pub(crate) type Points = BTreeMap<PathBuf, BTreeSet<OsString>>;

/// What to watch for `path` (absolute): for each hop of its symlink chain,
/// the hop's name in its directory, and each directory's name in its
/// parent, up to `/`.
pub(crate) fn points(path: &Path) -> Points {
    let mut points = Points::new();
    let mut hop = path.to_owned();
    for _ in 0..MAX_HOPS {
        let Some((dir, name)) = hop.parent().zip(hop.file_name()) else {
            break;
        };
        let dir = dir.to_owned();
        points.entry(dir.clone()).or_default().insert(name.into());
        for above in dir.ancestors() {
            if let Some((parent, name)) = above.parent().zip(above.file_name()) {
                points
                    .entry(parent.to_owned())
                    .or_default()
                    .insert(name.into());
            }
        }
        match std::fs::read_link(&hop) {
            // A relative target is relative to the link's directory;
            // `join` keeps an absolute one as it is.
            Ok(target) => hop = dir.join(target),
            Err(_) => break,
        }
    }
    points
}

/// True when an event on `path` concerns one of the watched names.
pub(crate) fn concerns(points: &Points, path: &Path) -> bool {
    match path.parent().zip(path.file_name()) {
        Some((dir, name)) => points.get(dir).is_some_and(|names| names.contains(name)),
        None => false,
    }
}

/// A directory watcher kept in step with the points of a path.
pub(crate) struct FileWatch {
    path: PathBuf,
    watcher: RecommendedWatcher,
    current: Arc<ArcSwap<Points>>,
}

impl FileWatch {
    /// Watches `path`; `touched` runs (on the watcher's thread) for each
    /// event that concerns it, and for each error of the watch.
    pub(crate) fn new(
        path: &Path,
        touched: impl Fn(Result<&notify::EventKind, notify::Error>) + Send + 'static,
    ) -> notify::Result<Self> {
        let current = Arc::new(ArcSwap::from_pointee(Points::new()));
        let seen = Arc::clone(&current);
        let watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| match event {
                Ok(event) => {
                    let points = seen.load();
                    if event.paths.iter().any(|p| concerns(&points, p)) {
                        touched(Ok(&event.kind));
                    }
                }
                Err(e) => touched(Err(e)),
            })?;
        let mut watch = Self {
            path: std::path::absolute(path)?,
            watcher,
            current,
        };
        watch.refresh();
        Ok(watch)
    }

    /// Follows the path again (after a swap or a re-created directory):
    /// watches what is there now, and stops watching what is gone.
    /// Returns the directories that cannot be watched (missing for now).
    pub(crate) fn refresh(&mut self) -> Vec<PathBuf> {
        let wanted = points(&self.path);
        let old = self.current.load_full();
        for dir in old.keys().filter(|d| !wanted.contains_key(*d)) {
            let _ = self.watcher.unwatch(dir);
        }
        let mut missing = Vec::new();
        for dir in wanted.keys() {
            // Watching again is cheap, and re-arms a directory that was
            // removed and created again under the same name.
            let _ = self.watcher.unwatch(dir);
            if self
                .watcher
                .watch(dir, RecursiveMode::NonRecursive)
                .is_err()
            {
                missing.push(dir.clone());
            }
        }
        self.current.store(Arc::new(wanted));
        missing
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(points: &Points, dir: &Path) -> Vec<String> {
        points[dir]
            .iter()
            .map(|n| n.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn a_plain_file_watches_its_directory_and_the_directory_in_its_parent() {
        let p = points(Path::new("/etc/discoveryd/discoveryd.toml"));
        assert_eq!(names(&p, Path::new("/etc/discoveryd")), ["discoveryd.toml"]);
        assert_eq!(names(&p, Path::new("/etc")), ["discoveryd"]);
        assert_eq!(names(&p, Path::new("/")), ["etc"]);
        assert!(concerns(&p, Path::new("/etc/discoveryd/discoveryd.toml")));
        assert!(concerns(&p, Path::new("/etc/discoveryd")));
        assert!(!concerns(&p, Path::new("/etc/discoveryd/other.toml")));
        assert!(!concerns(&p, Path::new("/etc/passwd")));
    }

    #[test]
    fn a_configmap_chain_is_followed_hop_by_hop() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir(root.join("..2026_11_25_01")).unwrap();
        std::fs::write(root.join("..2026_11_25_01/discoveryd.toml"), "").unwrap();
        std::os::unix::fs::symlink("..2026_11_25_01", root.join("..data")).unwrap();
        std::os::unix::fs::symlink("..data/discoveryd.toml", root.join("discoveryd.toml")).unwrap();
        let p = points(&root.join("discoveryd.toml"));
        assert_eq!(names(&p, root), ["..data", "discoveryd.toml"]);
        assert!(concerns(&p, &root.join("..data")));
        assert_eq!(names(&p, &root.join("..data")), ["discoveryd.toml"]);
    }
}
