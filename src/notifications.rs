//! Nova's versioned notifications, as nova-compute sends them for the cloud's
//! telemetry (ceilometer, searchlight, an operator's own consumer): around each
//! instance operation `instance.<action>.start` and `.end` (and for a build that
//! fails, `instance.create.error`), published through oslo.messaging's
//! `messagingv2` driver to the `nova` exchange with the routing key
//! `<topic>.<priority>` (`versioned_notifications.info`, `.error`).
//!
//! On when nova.conf asks, as for nova-compute: `[oslo_messaging_notifications]
//! driver = messagingv2` (or `messaging`) and `[notifications]
//! notification_format = versioned` (or `both`; only the versioned ones are
//! sent); topics from `[notifications] versioned_notifications_topics`.
//!
//! The payloads are Nova's notification objects (`InstanceActionPayload` 1.9,
//! `InstanceCreatePayload` 1.13, `InstanceActionSnapshotPayload` 1.10,
//! `InstanceActionRebuildPayload` 1.10, `InstanceExistsPayload` 2.1 (sent
//! before a rebuild, as Nova does), `ExceptionPayload` 1.1, `FlavorPayload` 1.4,
//! `IpPayload` 1.0), built by pure functions from the instance as the RPC
//! message carried it; `block_devices` and `shares` are None as with Nova's
//! defaults (`bdms_in_notifications`, `include_share_mapping` off).

use async_trait::async_trait;
use serde_json::{json, Map, Value};

use crate::config::{ConfigError, Ini};
use crate::context::RequestContext;
use crate::exception::NovaException;
use crate::objects::Instance;

/// What of nova.conf the notifications follow.
#[derive(Debug, Clone, PartialEq)]
pub struct NotificationConfig {
    pub enabled: bool,
    pub topics: Vec<String>,
    /// `[DEFAULT] instance_usage_audit_period`: the period `instance.exists`
    /// reports usage for.
    pub audit_period: AuditPeriod,
}

impl NotificationConfig {
    pub fn from_ini(ini: &Ini) -> Result<Self, ConfigError> {
        let drivers = ini
            .group("oslo_messaging_notifications")
            .list("driver", &[])?;
        let messaging = drivers
            .iter()
            .any(|d| d == "messagingv2" || d == "messaging");
        let n = ini.group("notifications");
        let format = n.str("notification_format", "unversioned")?;
        let topics = n.list(
            "versioned_notifications_topics",
            &["versioned_notifications"],
        )?;
        let d = ini.group("DEFAULT");
        let period = d.str("instance_usage_audit_period", "month")?;
        let audit_period = AuditPeriod::parse(&period).ok_or_else(|| {
            d.invalid(
                "instance_usage_audit_period",
                "must be hour, day, month or year, with an optional @offset (month@15)",
            )
        })?;
        Ok(NotificationConfig {
            enabled: messaging && (format == "versioned" || format == "both") && !topics.is_empty(),
            topics,
            audit_period,
        })
    }
}

/// Nova's usage audit period (`instance_usage_audit_period`): a unit and the
/// offset its periods begin at (`day@18`: at 18:00 UTC; `month@15`: on the
/// 15th; `year@3`: on March 1st; `hour@30`: at half past).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditPeriod {
    Hour(u32),
    Day(u32),
    Month(u32),
    Year(u32),
}

impl AuditPeriod {
    pub fn parse(s: &str) -> Option<Self> {
        let (unit, offset) = match s.split_once('@') {
            Some((u, o)) => (u, o.trim().parse::<u32>().ok()?),
            None => (s, 0),
        };
        Some(match unit.trim() {
            "hour" if offset < 60 => AuditPeriod::Hour(offset),
            "day" if offset < 24 => AuditPeriod::Day(offset),
            "month" if offset <= 28 => AuditPeriod::Month(offset.max(1)),
            "year" if offset <= 12 => AuditPeriod::Year(offset.max(1)),
            _ => return None,
        })
    }

    /// The start of the period `now` is in (the end of the last completed
    /// one, as Nova's `last_completed_audit_period` has it).
    pub fn current_start(
        self,
        now: chrono::DateTime<chrono::Utc>,
    ) -> chrono::DateTime<chrono::Utc> {
        use chrono::{Datelike, Duration, TimeZone, Timelike, Utc};
        let at = |y: i32, mo: u32, d: u32, h: u32, mi: u32| {
            Utc.with_ymd_and_hms(y, mo, d, h, mi, 0)
                .single()
                .unwrap_or(now)
        };
        // where this period would begin, and where the one before began
        let (begin, earlier) = match self {
            AuditPeriod::Hour(m) => {
                let b = at(now.year(), now.month(), now.day(), now.hour(), m);
                (b, b - Duration::hours(1))
            }
            AuditPeriod::Day(h) => {
                let b = at(now.year(), now.month(), now.day(), h, 0);
                (b, b - Duration::days(1))
            }
            AuditPeriod::Month(d) => {
                let (y, mo) = match now.month() {
                    1 => (now.year() - 1, 12),
                    m => (now.year(), m - 1),
                };
                (at(now.year(), now.month(), d, 0, 0), at(y, mo, d, 0, 0))
            }
            AuditPeriod::Year(mo) => (at(now.year(), mo, 1, 0, 0), at(now.year() - 1, mo, 1, 0, 0)),
        };
        // Nova's `end >= now`: a period that begins right now began a period ago
        if begin >= now {
            earlier
        } else {
            begin
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    Info,
    Error,
}

impl Priority {
    fn name(self) -> &'static str {
        match self {
            Priority::Info => "INFO",
            Priority::Error => "ERROR",
        }
    }
}

/// One notification, ready to publish.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    pub event_type: String,
    pub priority: Priority,
    pub payload: Value,
}

/// Where notifications go (the broker; nowhere when they are off).
#[async_trait]
pub trait Notifier: Send + Sync {
    async fn notify(&self, ctx: &RequestContext, n: Notification);
}

/// Notifications off.
pub struct NoNotifier;

#[async_trait]
impl Notifier for NoNotifier {
    async fn notify(&self, _: &RequestContext, _: Notification) {}
}

/// `messagingv2` over the daemon's broker connection.
pub struct AmqpNotifier {
    client: crate::rpc::RpcClient,
    topics: Vec<String>,
    publisher_id: String,
}

impl AmqpNotifier {
    pub fn new(client: crate::rpc::RpcClient, cfg: &NotificationConfig, host: &str) -> Self {
        AmqpNotifier {
            client,
            topics: cfg.topics.clone(),
            publisher_id: format!("nova-compute:{host}"),
        }
    }
}

#[async_trait]
impl Notifier for AmqpNotifier {
    async fn notify(&self, ctx: &RequestContext, n: Notification) {
        let body = encode(
            ctx,
            &self.publisher_id,
            &n,
            &uuid::Uuid::new_v4().to_string(),
            chrono::Utc::now(),
        );
        for topic in &self.topics {
            let rk = format!("{topic}.{}", n.priority.name().to_ascii_lowercase());
            if let Err(e) = self.client.notify(&rk, &body).await {
                tracing::warn!(event_type = %n.event_type, topic = %rk, error = %e, "notification not sent");
            }
        }
    }
}

/// The message body as oslo.messaging's notifier sends it: the notification,
/// the request context as `_context_*` keys (without the token: a consumer of
/// notifications has no use for the user's credentials), in the 2.0 envelope.
pub fn encode(
    ctx: &RequestContext,
    publisher_id: &str,
    n: &Notification,
    message_id: &str,
    at: chrono::DateTime<chrono::Utc>,
) -> Vec<u8> {
    let mut m = Map::new();
    m.insert("message_id".into(), json!(message_id));
    m.insert("publisher_id".into(), json!(publisher_id));
    m.insert("event_type".into(), json!(n.event_type));
    m.insert("priority".into(), json!(n.priority.name()));
    m.insert("payload".into(), n.payload.clone());
    m.insert(
        "timestamp".into(),
        json!(at.format("%Y-%m-%d %H:%M:%S%.6f").to_string()),
    );
    m.insert("_unique_id".into(), json!(crate::rpc::envelope::new_id()));
    for (k, v) in ctx.to_map() {
        if k != "auth_token" {
            m.insert(format!("_context_{k}"), v);
        }
    }
    crate::rpc::envelope::envelope(&Value::Object(m).to_string())
}

/// The notification of an operation (the RPC method's name, as the instance
/// action events have it), as Nova names it; None for the ones Nova sends none
/// of.
pub fn event_of(method: &str) -> Option<&'static str> {
    Some(match method {
        "build_and_run_instance" | "_do_build_and_run_instance" => "instance.create",
        "terminate_instance" => "instance.delete",
        "stop_instance" => "instance.power_off",
        "start_instance" => "instance.power_on",
        "reboot_instance" => "instance.reboot",
        "pause_instance" => "instance.pause",
        "unpause_instance" => "instance.unpause",
        "suspend_instance" => "instance.suspend",
        "resume_instance" => "instance.resume",
        "attach_interface" => "instance.interface_attach",
        "snapshot_instance" | "backup_instance" => "instance.snapshot",
        "detach_interface" => "instance.interface_detach",
        "rebuild_instance" => "instance.rebuild",
        "shelve_instance" => "instance.shelve",
        "prep_resize" => "instance.resize_prep",
        "resize_instance" => "instance.resize",
        "finish_resize" => "instance.resize_finish",
        "confirm_resize" => "instance.resize_confirm",
        "finish_revert_resize" => "instance.resize_revert",
        "shelve_offload_instance" => "instance.shelve_offload",
        "unshelve_instance" => "instance.unshelve",
        _ => return None,
    })
}

fn object(name: &str, version: &str, data: Map<String, Value>) -> Value {
    json!({
        "nova_object.name": name,
        "nova_object.namespace": "nova",
        "nova_object.version": version,
        "nova_object.data": data,
    })
}

/// An instance field as Nova's payload has it (None when the object lacks it).
fn field(inst: &Instance, name: &str) -> Value {
    inst.object().get(name).cloned().unwrap_or(Value::Null)
}

/// A `DictOfStringsField`: every value as its text (`{}` when there is none).
fn dict_of_strings(v: Option<&Value>) -> Value {
    let m: Map<String, Value> = v
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    let text = v.as_str().map_or_else(|| v.to_string(), str::to_string);
                    (k.clone(), Value::String(text))
                })
                .collect()
        })
        .unwrap_or_default();
    Value::Object(m)
}

/// `FlavorPayload` 1.4 of the instance's flavor.
fn flavor_payload(inst: &Instance) -> Value {
    let f = inst
        .object()
        .get("flavor")
        .and_then(|f| f.get("nova_object.data"))
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let get = |k: &str| f.get(k).cloned().unwrap_or(Value::Null);
    let mut d = Map::new();
    for k in [
        "flavorid",
        "memory_mb",
        "vcpus",
        "root_gb",
        "ephemeral_gb",
        "rxtx_factor",
        "vcpu_weight",
        "description",
    ] {
        d.insert(k.into(), get(k));
    }
    d.insert(
        "name".into(),
        json!(f.get("name").and_then(Value::as_str).unwrap_or("")),
    );
    d.insert(
        "swap".into(),
        json!(f.get("swap").and_then(Value::as_i64).unwrap_or(0)),
    );
    d.insert(
        "disabled".into(),
        json!(f.get("disabled").and_then(Value::as_bool).unwrap_or(false)),
    );
    d.insert(
        "is_public".into(),
        json!(f.get("is_public").and_then(Value::as_bool).unwrap_or(true)),
    );
    d.insert("extra_specs".into(), dict_of_strings(f.get("extra_specs")));
    // FlavorPayload reads `projects` only where the flavor has them loaded
    d.insert("projects".into(), Value::Null);
    object("FlavorPayload", "1.4", d)
}

/// `IpPayload` 1.0 per fixed address of the instance's network_info.
fn ip_payloads(inst: &Instance) -> Vec<Value> {
    let nw: Value = serde_json::from_str(&inst.network_info().to_json()).unwrap_or(Value::Null);
    let mut out = Vec::new();
    for vif in nw.as_array().into_iter().flatten() {
        let subnets = vif["network"]["subnets"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for subnet in &subnets {
            for ip in subnet["ips"].as_array().into_iter().flatten() {
                if ip
                    .get("type")
                    .and_then(Value::as_str)
                    .is_some_and(|t| t != "fixed")
                {
                    continue;
                }
                let Some(address) = ip["address"].as_str() else {
                    continue;
                };
                let version = ip["version"]
                    .as_i64()
                    .or_else(|| subnet["version"].as_i64())
                    .unwrap_or(if address.contains(':') { 6 } else { 4 });
                let meta = dict_of_strings(vif.get("meta"));
                let mut d = Map::new();
                d.insert(
                    "label".into(),
                    json!(vif["network"]["label"].as_str().unwrap_or("")),
                );
                d.insert("mac".into(), vif["address"].clone());
                d.insert("meta".into(), meta);
                d.insert("port_uuid".into(), vif["id"].clone());
                d.insert("version".into(), json!(version));
                d.insert("address".into(), json!(address));
                d.insert(
                    "device_name".into(),
                    vif.get("devname").cloned().unwrap_or(Value::Null),
                );
                out.push(object("IpPayload", "1.0", d));
            }
        }
    }
    out
}

/// `ExceptionPayload` 1.1 of a failure.
fn exception_payload(e: &NovaException) -> Value {
    let mut d = Map::new();
    d.insert("module_name".into(), json!(e.module));
    d.insert("function_name".into(), json!("nova_docker"));
    d.insert("exception".into(), json!(e.class));
    d.insert("exception_message".into(), json!(e.message));
    d.insert("traceback".into(), json!(""));
    object("ExceptionPayload", "1.1", d)
}

/// The fields of `InstancePayload` 1.9 (with `InstanceActionPayload`'s `fault`).
fn instance_fields(
    ctx: &RequestContext,
    inst: &Instance,
    fault: Option<&NovaException>,
) -> Map<String, Value> {
    let mut d = Map::new();
    d.insert("uuid".into(), json!(inst.uuid()));
    d.insert("tenant_id".into(), field(inst, "project_id"));
    d.insert("host_name".into(), field(inst, "hostname"));
    d.insert("image_uuid".into(), field(inst, "image_ref"));
    d.insert("state".into(), field(inst, "vm_state"));
    d.insert("power_state".into(), json!(inst.power_state().name()));
    for k in [
        "user_id",
        "reservation_id",
        "display_name",
        "display_description",
        "host",
        "node",
        "os_type",
        "architecture",
        "availability_zone",
        "key_name",
        "kernel_id",
        "ramdisk_id",
        "created_at",
        "launched_at",
        "terminated_at",
        "deleted_at",
        "updated_at",
        "task_state",
        "progress",
    ] {
        d.insert(k.into(), field(inst, k));
    }
    let metadata: Map<String, Value> = inst
        .metadata()
        .into_iter()
        .map(|(k, v)| (k, json!(v)))
        .collect();
    d.insert("metadata".into(), Value::Object(metadata));
    d.insert(
        "locked".into(),
        json!(field(inst, "locked").as_bool().unwrap_or(false)),
    );
    d.insert(
        "auto_disk_config".into(),
        json!(field(inst, "auto_disk_config")
            .as_bool()
            .map_or("MANUAL", |a| if a { "AUTO" } else { "MANUAL" })),
    );
    d.insert("flavor".into(), flavor_payload(inst));
    d.insert("ip_addresses".into(), Value::Array(ip_payloads(inst)));
    d.insert("block_devices".into(), Value::Null);
    d.insert("shares".into(), Value::Null);
    let with_user = ctx.user_id.is_some() && ctx.project_id.is_some();
    d.insert(
        "request_id".into(),
        json!(ctx.request_id.as_deref().filter(|_| with_user)),
    );
    d.insert("action_initiator_user".into(), json!(ctx.user_id));
    d.insert("action_initiator_project".into(), json!(ctx.project_id));
    d.insert(
        "locked_reason".into(),
        json!(inst
            .system_metadata()
            .into_iter()
            .find(|(k, _)| k == "locked_reason")
            .map(|(_, v)| v)),
    );
    d.insert("fault".into(), fault.map_or(Value::Null, exception_payload));
    d
}

/// The payload of `instance.exists` (`InstanceExistsPayload` 2.1): the
/// instance (an `InstancePayload`, so no fault) and the audit period from
/// `begin` to `end`, the usage Nova reports before a rebuild.
pub fn exists_payload(
    ctx: &RequestContext,
    inst: &Instance,
    begin: chrono::DateTime<chrono::Utc>,
    end: chrono::DateTime<chrono::Utc>,
) -> Value {
    use crate::objects::format_datetime;
    let mut d = instance_fields(ctx, inst, None);
    d.remove("fault");
    let mut period = Map::new();
    period.insert(
        "audit_period_beginning".into(),
        json!(format_datetime(begin)),
    );
    period.insert("audit_period_ending".into(), json!(format_datetime(end)));
    d.insert(
        "audit_period".into(),
        object("AuditPeriodPayload", "1.0", period),
    );
    object("InstanceExistsPayload", "2.1", d)
}

/// The payload of `event` (`instance.create` gets `InstanceCreatePayload`,
/// `instance.snapshot` `InstanceActionSnapshotPayload` naming
/// `snapshot_image`, every other one `InstanceActionPayload`).
pub fn payload(
    ctx: &RequestContext,
    event: &str,
    inst: &Instance,
    fault: Option<&NovaException>,
    snapshot_image: Option<&str>,
) -> Value {
    let mut d = instance_fields(ctx, inst, fault);
    if event == "instance.rebuild" {
        let certs = field(inst, "trusted_certs");
        let ids = certs
            .get("nova_object.data")
            .and_then(|d| d.get("ids"))
            .cloned()
            .unwrap_or(Value::Null);
        d.insert("trusted_image_certificates".into(), ids);
        return object("InstanceActionRebuildPayload", "1.10", d);
    }
    if event == "instance.snapshot" {
        d.insert("snapshot_image_id".into(), json!(snapshot_image));
        return object("InstanceActionSnapshotPayload", "1.10", d);
    }
    if event == "instance.create" {
        // key pairs are in the instance's `keypairs` when the API loaded them
        // the members of the instance's KeyPairList and TagList
        let members = |name: &str| -> Vec<crate::objects::NovaObject> {
            inst.object()
                .get(name)
                .and_then(|v| crate::objects::NovaObject::from_primitive(v).ok())
                .and_then(|list| list.list_objects().ok())
                .unwrap_or_default()
        };
        let keypairs: Vec<Value> = members("keypairs")
            .iter()
            .map(|k| {
                let mut p = Map::new();
                for f in ["user_id", "name", "fingerprint", "public_key", "type"] {
                    p.insert(f.into(), k.get(f).cloned().unwrap_or(Value::Null));
                }
                object("KeypairPayload", "1.0", p)
            })
            .collect();
        let tags: Vec<Value> = members("tags")
            .iter()
            .filter_map(|t| t.get_str("tag").map(|s| json!(s)))
            .collect();
        d.insert("keypairs".into(), Value::Array(keypairs));
        d.insert("tags".into(), Value::Array(tags));
        d.insert("trusted_image_certificates".into(), Value::Null);
        d.insert(
            "instance_name".into(),
            json!(format!(
                "instance-{:08x}",
                field(inst, "id").as_i64().unwrap_or(0)
            )),
        );
        object("InstanceCreatePayload", "1.13", d)
    } else {
        object("InstanceActionPayload", "1.9", d)
    }
}
