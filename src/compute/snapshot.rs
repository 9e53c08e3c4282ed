//! `snapshot_instance` and `backup_instance`: the container committed and
//! streamed into the Glance image Nova's API created.

use super::action::{Expect, OnFailure};
use super::request::{SnapshotKind, SnapshotRequest};
use super::ComputeManager;
use crate::context::RequestContext;
use crate::exception::NovaException;
use crate::objects::{Instance, TaskState};

impl ComputeManager {
    /// snapshot_instance / backup_instance (casts).
    ///
    /// | step            | task_state                          | expected                           |
    /// |-----------------|-------------------------------------|------------------------------------|
    /// | start           | image_snapshot (backup: image_backup) | image_snapshot_pending (backup: image_backup) |
    /// | pending upload  | image_pending_upload                | image_snapshot (image_backup)      |
    /// | uploading       | image_uploading                     | image_pending_upload               |
    /// | done            | none                                | image_uploading                    |
    ///
    /// The vm_state does not change. A failure reverts the task state, with a
    /// fault, and the half-written image is deleted (the image service does).
    pub async fn snapshot_instance(
        &self,
        ctx: &RequestContext,
        req: SnapshotRequest,
    ) -> Result<(), NovaException> {
        let mut inst = req.instance.clone();
        let event = match req.kind {
            SnapshotKind::Snapshot => "snapshot_instance",
            SnapshotKind::Backup { .. } => "backup_instance",
        };
        let action = self
            .begin_writing(ctx, &inst, event, Some(&req.image_id))
            .await;
        let r = self.snapshot_steps(ctx, &mut inst, &req).await;
        action
            .end(ctx, &mut inst, r, OnFailure::RevertTaskState)
            .await
    }

    async fn snapshot_steps(
        &self,
        ctx: &RequestContext,
        inst: &mut Instance,
        req: &SnapshotRequest,
    ) -> Result<(), NovaException> {
        let (first, expected) = match req.kind {
            SnapshotKind::Snapshot => (TaskState::ImageSnapshot, TaskState::ImageSnapshotPending),
            SnapshotKind::Backup { .. } => (TaskState::ImageBackup, TaskState::ImageBackup),
        };
        let info = self.driver.get_info(inst.uuid()).await?;
        inst.set_power_state(info.state);
        inst.set_task_state(Some(first));
        self.save(ctx, inst, Expect::One(expected)).await?;
        inst.set_task_state(Some(TaskState::ImagePendingUpload));
        self.save(ctx, inst, Expect::One(first)).await?;
        inst.set_task_state(Some(TaskState::ImageUploading));
        self.save(ctx, inst, Expect::One(TaskState::ImagePendingUpload))
            .await?;
        self.images
            .snapshot(ctx, inst, &req.image_id, &req.kind)
            .await?;
        inst.set_task_state(None);
        self.save(ctx, inst, Expect::One(TaskState::ImageUploading))
            .await
    }
}
