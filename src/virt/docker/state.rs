//! Docker container state -> Nova power state, and the per-instance markers that Docker
//! itself cannot hold (labels are fixed at create time).
//!
//! A suspended instance is a frozen container (`docker pause`, the cgroup freezer) whose
//! uuid has a `suspended` marker file under the state dir; without the marker the same
//! frozen container is PAUSED. A `stopped` marker records that Nova stopped the container
//! (power_off, soft_delete, the stop half of a soft reboot); it is what tells SHUTDOWN from
//! CRASHED for a container that exited with a non-zero code.

use std::collections::HashSet;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bollard::models::{ContainerState, ContainerStateStatusEnum};

use crate::virt::PowerState;

/// What CRASHED means here: the engine calls the container dead, the kernel OOM-killed
/// it, or it exited with a non-zero code while Nova had not stopped it.
pub fn power_state(state: &ContainerState, suspended: bool, stopped_by_nova: bool) -> PowerState {
    use ContainerStateStatusEnum as S;
    let status = state.status.unwrap_or(S::EMPTY);
    if status == S::DEAD || state.dead == Some(true) {
        return PowerState::Crashed;
    }
    if status == S::PAUSED || state.paused == Some(true) {
        return if suspended {
            PowerState::Suspended
        } else {
            PowerState::Paused
        };
    }
    match status {
        S::RUNNING | S::RESTARTING => PowerState::Running,
        S::EXITED => {
            let crashed_exit = state.exit_code.unwrap_or(0) != 0 && !stopped_by_nova;
            if state.oom_killed == Some(true) || crashed_exit {
                PowerState::Crashed
            } else {
                PowerState::Shutdown
            }
        }
        S::CREATED | S::REMOVING => PowerState::Shutdown,
        S::PAUSED => PowerState::Paused,
        S::DEAD => PowerState::Crashed,
        S::EMPTY => {
            if state.running == Some(true) {
                PowerState::Running
            } else {
                PowerState::NoState
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Marker {
    Suspended,
    Stopped,
}

impl Marker {
    fn dir(self) -> &'static str {
        match self {
            Marker::Suspended => "suspended",
            Marker::Stopped => "stopped",
        }
    }
}

/// Marker files `<state_dir>/<kind>/<uuid>`, kept in memory too: reads are
/// answered from memory (they happen inside every state report), writes go to
/// memory and, on a blocking thread, to the file, so a restart finds them.
#[derive(Debug, Clone)]
pub struct Markers {
    root: PathBuf,
    set: Arc<Mutex<HashSet<(Marker, String)>>>,
}

impl Markers {
    /// Read the markers under `root` (creating its directories). Blocking: call it
    /// off the async workers.
    pub fn load(root: &Path) -> io::Result<Self> {
        let mut set = HashSet::new();
        for m in [Marker::Suspended, Marker::Stopped] {
            let dir = root.join(m.dir());
            std::fs::create_dir_all(&dir)?;
            for e in std::fs::read_dir(&dir)? {
                if let Some(name) = e?.file_name().to_str() {
                    if valid_uuid(name) {
                        set.insert((m, name.to_string()));
                    }
                }
            }
        }
        Ok(Markers {
            root: root.to_path_buf(),
            set: Arc::new(Mutex::new(set)),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, m: Marker, uuid: &str) -> PathBuf {
        self.root.join(m.dir()).join(uuid)
    }

    fn memory(&self) -> std::sync::MutexGuard<'_, HashSet<(Marker, String)>> {
        self.set.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn is_set(&self, m: Marker, uuid: &str) -> bool {
        self.memory().contains(&(m, uuid.to_string()))
    }

    pub async fn set(&self, m: Marker, uuid: &str) -> io::Result<()> {
        let path = self.path(m, uuid);
        blocking(move || std::fs::write(path, b"")).await?;
        self.memory().insert((m, uuid.to_string()));
        Ok(())
    }

    pub async fn clear(&self, m: Marker, uuid: &str) -> io::Result<()> {
        self.memory().remove(&(m, uuid.to_string()));
        let path = self.path(m, uuid);
        blocking(move || match std::fs::remove_file(path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        })
        .await
    }

    pub async fn clear_all(&self, uuid: &str) -> io::Result<()> {
        self.clear(Marker::Suspended, uuid).await?;
        self.clear(Marker::Stopped, uuid).await
    }
}

/// Run file system work on the blocking pool.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(io::Error::other(e)))
}

/// An instance uuid safe as a container name and a file name.
pub fn valid_uuid(uuid: &str) -> bool {
    !uuid.is_empty()
        && uuid.len() <= 64
        && uuid.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && uuid
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ContainerStateStatusEnum as S;

    fn st(status: S, exit: i64, oom: bool) -> ContainerState {
        ContainerState {
            status: Some(status),
            running: Some(matches!(status, S::RUNNING | S::PAUSED)),
            paused: Some(status == S::PAUSED),
            dead: Some(status == S::DEAD),
            oom_killed: Some(oom),
            exit_code: Some(exit),
            ..Default::default()
        }
    }

    #[test]
    fn full_map() {
        assert_eq!(
            power_state(&st(S::RUNNING, 0, false), false, false),
            PowerState::Running
        );
        assert_eq!(
            power_state(&st(S::PAUSED, 0, false), false, false),
            PowerState::Paused
        );
        assert_eq!(
            power_state(&st(S::PAUSED, 0, false), true, false),
            PowerState::Suspended
        );
        assert_eq!(
            power_state(&st(S::EXITED, 0, false), false, false),
            PowerState::Shutdown
        );
        assert_eq!(
            power_state(&st(S::CREATED, 0, false), false, false),
            PowerState::Shutdown
        );
        assert_eq!(
            power_state(&st(S::DEAD, 0, false), false, false),
            PowerState::Crashed
        );
        assert_eq!(
            power_state(&st(S::EXITED, 137, true), false, true),
            PowerState::Crashed
        );
        assert_eq!(
            power_state(&st(S::EXITED, 3, false), false, false),
            PowerState::Crashed
        );
        assert_eq!(
            power_state(&st(S::EXITED, 137, false), false, true),
            PowerState::Shutdown
        );
        // a stale suspended marker does not make a running container suspended
        assert_eq!(
            power_state(&st(S::RUNNING, 0, false), true, false),
            PowerState::Running
        );
        assert_eq!(
            power_state(&ContainerState::default(), false, false),
            PowerState::NoState
        );
    }

    #[tokio::test]
    async fn markers_round_trip_and_survive_a_restart() {
        let d = tempfile::tempdir().unwrap();
        let m = Markers::load(d.path()).unwrap();
        assert!(!m.is_set(Marker::Suspended, "a"));
        m.set(Marker::Suspended, "a").await.unwrap();
        m.set(Marker::Stopped, "a").await.unwrap();
        m.set(Marker::Stopped, "b").await.unwrap();
        assert!(m.is_set(Marker::Suspended, "a") && m.is_set(Marker::Stopped, "a"));
        m.clear_all("a").await.unwrap();
        m.clear_all("a").await.unwrap();
        assert!(!m.is_set(Marker::Suspended, "a") && !m.is_set(Marker::Stopped, "a"));
        // a new daemon reads what the files say
        let again = Markers::load(d.path()).unwrap();
        assert!(again.is_set(Marker::Stopped, "b"));
        assert!(!again.is_set(Marker::Stopped, "a"));
    }

    #[test]
    fn uuids() {
        assert!(valid_uuid("0b3c6c36-6f57-4a57-8d55-6a2f2a4f7d10"));
        assert!(!valid_uuid(""));
        assert!(!valid_uuid("../etc"));
        assert!(!valid_uuid("-x"));
        assert!(!valid_uuid("a/b"));
    }
}
