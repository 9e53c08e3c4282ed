//! An instance's `vm_state` and `task_state` (nova/objects/fields.py
//! `InstanceState`, `InstanceTaskState`), typed: the manager writes and compares
//! these values, never strings.

use std::fmt;

macro_rules! string_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident = $s:literal),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($variant),*
        }

        impl $name {
            /// Every value, in Nova's order.
            pub const ALL: &'static [$name] = &[$($name::$variant),*];

            /// The value on the wire.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $s),*
                }
            }

            /// The value from the wire; `None` for a value Nova does not define.
            pub fn parse(s: &str) -> Option<Self> {
                match s {
                    $($s => Some($name::$variant),)*
                    _ => None,
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

string_enum! {
    /// nova/compute/vm_states.py
    VmState {
        Active = "active",
        Building = "building",
        Paused = "paused",
        Suspended = "suspended",
        Stopped = "stopped",
        Rescued = "rescued",
        Resized = "resized",
        SoftDeleted = "soft-delete",
        Deleted = "deleted",
        Error = "error",
        Shelved = "shelved",
        ShelvedOffloaded = "shelved_offloaded",
    }
}

string_enum! {
    /// nova/compute/task_states.py
    TaskState {
        Scheduling = "scheduling",
        BlockDeviceMapping = "block_device_mapping",
        Networking = "networking",
        Spawning = "spawning",
        ImageSnapshot = "image_snapshot",
        ImageSnapshotPending = "image_snapshot_pending",
        ImagePendingUpload = "image_pending_upload",
        ImageUploading = "image_uploading",
        ImageBackup = "image_backup",
        UpdatingPassword = "updating_password",
        ResizePrep = "resize_prep",
        ResizeMigrating = "resize_migrating",
        ResizeMigrated = "resize_migrated",
        ResizeFinish = "resize_finish",
        ResizeReverting = "resize_reverting",
        ResizeConfirming = "resize_confirming",
        Rebooting = "rebooting",
        RebootPending = "reboot_pending",
        RebootStarted = "reboot_started",
        RebootingHard = "rebooting_hard",
        RebootPendingHard = "reboot_pending_hard",
        RebootStartedHard = "reboot_started_hard",
        Pausing = "pausing",
        Unpausing = "unpausing",
        Suspending = "suspending",
        Resuming = "resuming",
        PoweringOff = "powering-off",
        PoweringOn = "powering-on",
        Rescuing = "rescuing",
        Unrescuing = "unrescuing",
        Rebuilding = "rebuilding",
        RebuildBlockDeviceMapping = "rebuild_block_device_mapping",
        RebuildSpawning = "rebuild_spawning",
        Migrating = "migrating",
        Deleting = "deleting",
        SoftDeleting = "soft-deleting",
        Restoring = "restoring",
        Shelving = "shelving",
        ShelvingImagePendingUpload = "shelving_image_pending_upload",
        ShelvingImageUploading = "shelving_image_uploading",
        ShelvingOffloading = "shelving_offloading",
        Unshelving = "unshelving",
    }
}

impl TaskState {
    /// `task_states.soft_reboot_states`.
    pub const SOFT_REBOOT: &'static [TaskState] = &[
        TaskState::Rebooting,
        TaskState::RebootPending,
        TaskState::RebootStarted,
    ];
    /// `task_states.hard_reboot_states`.
    pub const HARD_REBOOT: &'static [TaskState] = &[
        TaskState::RebootingHard,
        TaskState::RebootPendingHard,
        TaskState::RebootStartedHard,
    ];

    /// A build in progress (`_init_instance` treats these as cut off).
    pub fn is_building(self) -> bool {
        matches!(
            self,
            TaskState::Scheduling
                | TaskState::BlockDeviceMapping
                | TaskState::Networking
                | TaskState::Spawning
        )
    }

    /// A snapshot, backup or shelve this host had begun writing into Glance
    /// (the API's own `image_snapshot_pending` and `shelving` are not: their
    /// message may still come).
    pub fn is_uploading_an_image(self) -> bool {
        matches!(
            self,
            TaskState::ImageSnapshot
                | TaskState::ImageBackup
                | TaskState::ImagePendingUpload
                | TaskState::ImageUploading
                | TaskState::ShelvingImagePendingUpload
                | TaskState::ShelvingImageUploading
        )
    }

    /// A rebuild in progress.
    pub fn is_rebuilding(self) -> bool {
        matches!(
            self,
            TaskState::Rebuilding
                | TaskState::RebuildBlockDeviceMapping
                | TaskState::RebuildSpawning
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_every_value() {
        for s in VmState::ALL {
            assert_eq!(VmState::parse(s.as_str()), Some(*s));
        }
        for s in TaskState::ALL {
            assert_eq!(TaskState::parse(s.as_str()), Some(*s));
        }
        assert_eq!(
            TaskState::parse("powering-off"),
            Some(TaskState::PoweringOff)
        );
        assert_eq!(VmState::parse("soft-delete"), Some(VmState::SoftDeleted));
        assert_eq!(TaskState::parse("dancing"), None);
    }

    /// Every value of nova 34's enums, as `nova.objects.fields` lists them.
    #[test]
    fn matches_novas_lists() {
        assert_eq!(VmState::ALL.len(), 12);
        assert_eq!(TaskState::ALL.len(), 42);
    }
}
