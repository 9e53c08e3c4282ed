//! The engine's event stream, as lifecycle events of our instances.

use bollard::models::EventMessage;
use bollard::query_parameters::EventsOptions;
use futures_util::{Stream, StreamExt};

use super::driver::{engine_err, DockerDriver};
use crate::virt::{
    DriverError, EventKind, LifecycleEvent, LABEL_INSTANCE_UUID, LABEL_MANAGED_BY, MANAGED_BY,
};

/// The engine's action word as an event kind (`exec_start: sh` and the like: none).
fn event_kind(action: &str) -> Option<EventKind> {
    Some(match action {
        "start" => EventKind::Started,
        "die" => EventKind::Died,
        "stop" => EventKind::Stopped,
        "pause" => EventKind::Paused,
        "unpause" => EventKind::Unpaused,
        "oom" => EventKind::Oom,
        "destroy" => EventKind::Destroyed,
        _ => return None,
    })
}

impl DockerDriver {
    /// Lifecycle events of our containers on this host, as the engine reports them
    /// (start, die, stop, pause, unpause, oom, destroy). The stream ends if the engine
    /// connection drops; the caller re-subscribes with [`Self::events_since`] the last
    /// event's time (and re-syncs with list_instances). Events from the moment of this
    /// call on are delivered, even if the stream is first polled later.
    pub fn events(
        &self,
    ) -> impl Stream<Item = Result<LifecycleEvent, DriverError>> + Send + 'static {
        self.events_since(std::time::SystemTime::now())
    }

    /// [`Self::events`] from `since` on (the engine replays what it still keeps).
    pub fn events_since(
        &self,
        since: std::time::SystemTime,
    ) -> impl Stream<Item = Result<LifecycleEvent, DriverError>> + Send + 'static {
        let mut filters = self.our_filters(None);
        filters.insert("type".into(), vec!["container".into()]);
        filters.insert(
            "event".into(),
            ["start", "die", "stop", "pause", "unpause", "oom", "destroy"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
        );
        // The request goes out when the stream is first polled; `since` makes sure
        // nothing between this call and the first poll is lost.
        let now = since
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let since = format!("{}.{:09}", now.as_secs(), now.subsec_nanos());
        let opts = EventsOptions {
            filters: Some(filters),
            since: Some(since),
            until: None,
        };
        self.docker_unbounded()
            .events(Some(opts))
            .filter_map(|r| async move {
                match r {
                    Ok(m) => lifecycle_event(m).map(Ok),
                    Err(e) => Some(Err(engine_err("events")(e))),
                }
            })
    }
}

fn lifecycle_event(m: EventMessage) -> Option<LifecycleEvent> {
    let kind = event_kind(m.action.as_deref()?.split(':').next()?)?;
    let actor = m.actor?;
    let attrs = actor.attributes.unwrap_or_default();
    if attrs.get(LABEL_MANAGED_BY).map(String::as_str) != Some(MANAGED_BY) {
        return None;
    }
    Some(LifecycleEvent {
        uuid: attrs.get(LABEL_INSTANCE_UUID)?.clone(),
        container_id: actor.id.unwrap_or_default(),
        kind,
        exit_code: attrs.get("exitCode").and_then(|c| c.parse().ok()),
        time_nano: m
            .time_nano
            .unwrap_or_else(|| m.time.unwrap_or(0).saturating_mul(1_000_000_000)),
    })
}

/// Interface counters inside the container's network namespace, read from /proc
/// (for interfaces our VIF drivers plugged, which the engine does not know).
#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::EventActor;
    use std::collections::HashMap;

    #[test]
    fn events_of_ours_only() {
        let ev = |action: &str, ours: bool| EventMessage {
            action: Some(action.into()),
            actor: Some(EventActor {
                id: Some("cid".into()),
                attributes: Some(HashMap::from([
                    (
                        LABEL_MANAGED_BY.to_string(),
                        if ours { MANAGED_BY } else { "x" }.to_string(),
                    ),
                    (LABEL_INSTANCE_UUID.to_string(), "u1".to_string()),
                    ("exitCode".to_string(), "3".to_string()),
                ])),
            }),
            time: Some(2),
            ..Default::default()
        };
        let e = lifecycle_event(ev("die", true)).unwrap();
        assert_eq!(
            (e.kind, e.uuid.as_str(), e.exit_code, e.time_nano),
            (EventKind::Died, "u1", Some(3), 2_000_000_000)
        );
        assert!(lifecycle_event(ev("die", false)).is_none());
        assert!(lifecycle_event(ev("exec_start: sh", true)).is_none());
        assert_eq!(
            lifecycle_event(ev("oom", true)).unwrap().kind,
            EventKind::Oom
        );
    }
}
