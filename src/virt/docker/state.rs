//! Docker container state -> Nova power state, and the per-instance markers that Docker
//! itself cannot hold (labels are fixed at create time).
//!
//! A suspended instance is a frozen container (`docker pause`, the cgroup freezer) whose
//! uuid has a `suspended` marker file under the state dir; without the marker the same
//! frozen container is PAUSED. A `stopped` marker records that Nova stopped the container
//! (power_off, soft_delete, the stop half of a soft reboot); it is what tells SHUTDOWN from
//! CRASHED for a container that exited with a non-zero code.

use std::io;
use std::path::{Path, PathBuf};

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

/// Marker files `<state_dir>/<kind>/<uuid>`.
#[derive(Debug, Clone)]
pub struct Markers {
    root: PathBuf,
}

impl Markers {
    pub fn new(root: &Path) -> io::Result<Self> {
        for m in [Marker::Suspended, Marker::Stopped] {
            std::fs::create_dir_all(root.join(m.dir()))?;
        }
        Ok(Markers {
            root: root.to_path_buf(),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, m: Marker, uuid: &str) -> PathBuf {
        self.root.join(m.dir()).join(uuid)
    }

    pub fn is_set(&self, m: Marker, uuid: &str) -> bool {
        self.path(m, uuid).exists()
    }

    pub fn set(&self, m: Marker, uuid: &str) -> io::Result<()> {
        std::fs::write(self.path(m, uuid), b"")
    }

    pub fn clear(&self, m: Marker, uuid: &str) -> io::Result<()> {
        match std::fs::remove_file(self.path(m, uuid)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    pub fn clear_all(&self, uuid: &str) -> io::Result<()> {
        self.clear(Marker::Suspended, uuid)?;
        self.clear(Marker::Stopped, uuid)
    }
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

    #[test]
    fn markers_round_trip() {
        let d = tempfile::tempdir().unwrap();
        let m = Markers::new(d.path()).unwrap();
        assert!(!m.is_set(Marker::Suspended, "a"));
        m.set(Marker::Suspended, "a").unwrap();
        m.set(Marker::Stopped, "a").unwrap();
        assert!(m.is_set(Marker::Suspended, "a") && m.is_set(Marker::Stopped, "a"));
        m.clear_all("a").unwrap();
        m.clear_all("a").unwrap();
        assert!(!m.is_set(Marker::Suspended, "a") && !m.is_set(Marker::Stopped, "a"));
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
