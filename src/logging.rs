//! The daemon's log lines as oslo.log writes nova-compute's, so the tooling an
//! operator already has (log parsers, `grep req-...`, the request-id tracing of
//! a whole cloud) reads ours too.
//!
//! Text, by default (oslo.log's `logging_context_format_string` and
//! `logging_default_format_string`):
//!
//! ```text
//! 2026-12-02 05:44:15.045 4242 INFO nova_docker.compute.build [None req-6c1d... 5f7e... 9a3b... - default default] [instance: 029f...] Instance spawned
//! 2026-12-02 05:44:15.045 4242 INFO nova_docker.daemon [-] registered
//! ```
//!
//! that is: local time with milliseconds, the process id, the level as Python
//! names it, the logger (the module path, dotted), then in brackets the global
//! request id, the request id and the user identity (`user project domain
//! user_domain project_domain`, `-` for what is unknown) of the Nova API call
//! the line is about, or `-` for a line about no request; `[instance: <uuid>]`
//! when the line is about an instance; the message, then its structured fields
//! as `key=value`.
//!
//! With `[DEFAULT] use_json = True`, one JSON object per line, with the keys of
//! oslo.log's `JSONFormatter` (`message`, `asctime`, `name`, `levelname`,
//! `levelno`, `process`, `hostname`, `created`, `context` with the request's
//! ids, `extra` with the fields and `instance`).
//!
//! The request is named by the span the RPC server opens around each message
//! ([`REQUEST_SPAN`]); its fields are read back by [`RequestLayer`].
//!
//! Options, `[DEFAULT]`: `debug` (DEBUG lines of ours; the libraries' stay at
//! INFO, as oslo.log's `default_log_levels` keep amqp and urllib3 quiet),
//! `use_json`, `log_file` and `log_dir` (append to that file instead of
//! standard error). `RUST_LOG` overrides the levels.

use std::fmt::Write as _;
use std::path::PathBuf;

use serde_json::{json, Map, Value};
use tracing::field::{Field, Visit};
use tracing::{span, Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

use crate::config::{ConfigError, Ini};

/// The name of the span the RPC server opens around each request.
pub const REQUEST_SPAN: &str = "request";

/// What of `[DEFAULT]` the logs follow.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogConfig {
    pub debug: bool,
    pub use_json: bool,
    /// `log_dir`/`log_file`, or `log_file` alone; None: standard error.
    pub log_file: Option<PathBuf>,
}

impl LogConfig {
    pub fn from_ini(ini: &Ini) -> Result<Self, ConfigError> {
        let g = ini.group("DEFAULT");
        let file = g.opt_nonempty("log_file")?.map(PathBuf::from);
        let dir = g.opt_nonempty("log_dir")?.map(PathBuf::from);
        Ok(LogConfig {
            debug: g.bool("debug", false)?,
            use_json: g.bool("use_json", false)?,
            log_file: match (dir, file) {
                (Some(d), Some(f)) if f.is_relative() => Some(d.join(f)),
                (_, f) => f,
            },
        })
    }

    /// The levels when `RUST_LOG` does not say.
    pub fn default_filter(&self) -> &'static str {
        if self.debug {
            "info,nova_docker=debug,nova_docker_compute=debug"
        } else {
            "info"
        }
    }
}

/// Install the daemon's subscriber: levels, the request fields, the format.
pub fn init(cfg: &LogConfig, hostname: &str) -> std::io::Result<()> {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(cfg.default_filter()));
    let writer = match &cfg.log_file {
        Some(p) => {
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)?;
            tracing_subscriber::fmt::writer::BoxMakeWriter::new(std::sync::Mutex::new(f))
        }
        None => tracing_subscriber::fmt::writer::BoxMakeWriter::new(std::io::stderr),
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(RequestLayer)
        .with(
            tracing_subscriber::fmt::layer()
                .event_format(OsloFormat::new(cfg.use_json, hostname))
                .with_writer(writer),
        )
        .init();
    Ok(())
}

/// The request a line is about: what Nova's context named (oslo.context's
/// `user_identity` parts) and the instance.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RequestFields {
    pub request_id: Option<String>,
    pub global_request_id: Option<String>,
    pub user: Option<String>,
    pub project: Option<String>,
    pub domain: Option<String>,
    pub user_domain: Option<String>,
    pub project_domain: Option<String>,
    pub instance: Option<String>,
}

impl RequestFields {
    fn set(&mut self, name: &str, value: String) -> bool {
        let slot = match name {
            "request_id" => &mut self.request_id,
            "global_request_id" => &mut self.global_request_id,
            "user" => &mut self.user,
            "project" => &mut self.project,
            "domain" => &mut self.domain,
            "user_domain" => &mut self.user_domain,
            "project_domain" => &mut self.project_domain,
            "instance" => &mut self.instance,
            _ => return false,
        };
        *slot = Some(value);
        true
    }

    /// Fields of a span nearer the event win.
    fn fill_from(&mut self, outer: &RequestFields) {
        let pairs = [
            (&mut self.request_id, &outer.request_id),
            (&mut self.global_request_id, &outer.global_request_id),
            (&mut self.user, &outer.user),
            (&mut self.project, &outer.project),
            (&mut self.domain, &outer.domain),
            (&mut self.user_domain, &outer.user_domain),
            (&mut self.project_domain, &outer.project_domain),
            (&mut self.instance, &outer.instance),
        ];
        for (mine, theirs) in pairs {
            if mine.is_none() {
                mine.clone_from(theirs);
            }
        }
    }

    /// oslo.log's `user_identity`: `user project domain user_domain project_domain`.
    fn user_identity(&self) -> String {
        [
            &self.user,
            &self.project,
            &self.domain,
            &self.user_domain,
            &self.project_domain,
        ]
        .iter()
        .map(|v| v.as_deref().unwrap_or("-"))
        .collect::<Vec<_>>()
        .join(" ")
    }
}

/// Text of a field value: a string as it is, anything else as it prints.
struct FieldVisitor<'a> {
    request: &'a mut RequestFields,
    /// The event's `message`, and its other fields in order (None for a span).
    message: Option<&'a mut String>,
    others: Option<&'a mut Vec<(&'static str, String)>>,
}

impl FieldVisitor<'_> {
    fn put(&mut self, field: &Field, value: String) {
        if field.name() == "message" {
            if let Some(m) = self.message.as_deref_mut() {
                *m = value;
                return;
            }
        }
        // on an event only the instance is lifted out of the fields; a span's
        // request fields all are
        let lifted = if self.others.is_some() {
            field.name() == "instance" && self.request.set("instance", value.clone())
        } else {
            self.request.set(field.name(), value.clone())
        };
        if !lifted {
            if let Some(o) = self.others.as_deref_mut() {
                o.push((field.name(), value));
            }
        }
    }
}

impl Visit for FieldVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, value.to_string());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.put(field, format!("{value:?}"));
    }
}

/// Keeps the request fields of each span in its extensions, for the format.
pub struct RequestLayer;

impl<S> Layer<S> for RequestLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &span::Attributes<'_>, id: &span::Id, ctx: Context<'_, S>) {
        let mut fields = RequestFields::default();
        attrs.record(&mut FieldVisitor {
            request: &mut fields,
            message: None,
            others: None,
        });
        if fields != RequestFields::default() {
            if let Some(span) = ctx.span(id) {
                span.extensions_mut().insert(fields);
            }
        }
    }

    fn on_record(&self, id: &span::Id, values: &span::Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut ext = span.extensions_mut();
        let mut fields = ext.remove::<RequestFields>().unwrap_or_default();
        values.record(&mut FieldVisitor {
            request: &mut fields,
            message: None,
            others: None,
        });
        ext.insert(fields);
    }
}

fn python_level(l: &Level) -> (&'static str, u8) {
    match *l {
        Level::ERROR => ("ERROR", 40),
        Level::WARN => ("WARNING", 30),
        Level::INFO => ("INFO", 20),
        Level::DEBUG | Level::TRACE => ("DEBUG", 10),
    }
}

/// A field value as text in a line: quoted only when it holds a space, a quote
/// or an `=` (so a line still splits on spaces).
fn field_text(v: &str) -> std::borrow::Cow<'_, str> {
    if v.is_empty() || v.contains([' ', '"', '=', '\n', '\t']) {
        format!("{v:?}").into()
    } else {
        v.into()
    }
}

/// oslo.log's line format, text or JSON.
pub struct OsloFormat {
    json: bool,
    hostname: String,
    pid: u32,
}

impl OsloFormat {
    pub fn new(json: bool, hostname: &str) -> Self {
        OsloFormat {
            json,
            hostname: hostname.to_string(),
            pid: std::process::id(),
        }
    }

    /// One line (without its newline) for a record.
    pub fn line(&self, rec: &Record<'_>, now: chrono::DateTime<chrono::Local>) -> String {
        let (level, levelno) = python_level(&rec.level);
        let name = rec.target.replace("::", ".");
        let asctime = now.format("%Y-%m-%d %H:%M:%S%.3f").to_string();
        let has_request = rec.request.request_id.is_some();
        if self.json {
            let mut extra = Map::new();
            for (k, v) in &rec.fields {
                extra.insert((*k).to_string(), json!(v));
            }
            if let Some(i) = &rec.request.instance {
                extra.insert("instance".into(), json!({"uuid": i}));
            }
            let context = if has_request || rec.request.user.is_some() {
                let r = &rec.request;
                json!({
                    "request_id": r.request_id, "global_request_id": r.global_request_id,
                    "user": r.user, "project": r.project, "domain": r.domain,
                    "user_domain": r.user_domain, "project_domain": r.project_domain,
                    "user_identity": r.user_identity(),
                })
            } else {
                json!({})
            };
            let mut v = json!({
                "message": rec.message,
                "asctime": asctime,
                "name": name,
                "levelname": level,
                "levelno": levelno,
                "process": self.pid,
                "hostname": self.hostname,
                "created": now.timestamp_micros() as f64 / 1e6,
                "context": context,
                "extra": extra,
            });
            if let (Some(f), Some(l)) = (rec.file, rec.line) {
                v["pathname"] = json!(f);
                v["lineno"] = json!(l);
            }
            return v.to_string();
        }
        let mut out = format!("{asctime} {} {level} {name} ", self.pid);
        if has_request {
            let r = &rec.request;
            let _ = write!(
                out,
                "[{} {} {}] ",
                r.global_request_id.as_deref().unwrap_or("None"),
                r.request_id.as_deref().unwrap_or("-"),
                r.user_identity()
            );
        } else {
            out.push_str("[-] ");
        }
        if let Some(i) = &rec.request.instance {
            let _ = write!(out, "[instance: {i}] ");
        }
        out.push_str(&rec.message);
        for (k, v) in &rec.fields {
            let _ = write!(out, " {k}={}", field_text(v));
        }
        out
    }
}

/// An event as the format sees it.
#[derive(Debug, Clone)]
pub struct Record<'a> {
    pub level: Level,
    pub target: &'a str,
    pub file: Option<&'a str>,
    pub line: Option<u32>,
    pub message: String,
    pub fields: Vec<(&'static str, String)>,
    pub request: RequestFields,
}

impl<S, N> FormatEvent<S, N> for OsloFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let meta = event.metadata();
        let mut rec = Record {
            level: *meta.level(),
            target: meta.target(),
            file: meta.file(),
            line: meta.line(),
            message: String::new(),
            fields: Vec::new(),
            request: RequestFields::default(),
        };
        let mut message = String::new();
        let mut fields = Vec::new();
        event.record(&mut FieldVisitor {
            request: &mut rec.request,
            message: Some(&mut message),
            others: Some(&mut fields),
        });
        rec.message = message;
        rec.fields = fields;
        if let Some(scope) = ctx.event_scope() {
            for span in scope {
                if let Some(f) = span.extensions().get::<RequestFields>() {
                    rec.request.fill_from(f);
                }
            }
        }
        writeln!(writer, "{}", self.line(&rec, chrono::Local::now()))
    }
}

/// The instance a request's arguments are about (`instance`, a Nova object, or
/// `instance_uuid`), for the request's span.
pub fn instance_of(args: &Map<String, Value>) -> Option<&str> {
    args.get("instance")
        .and_then(|i| i.get("nova_object.data").unwrap_or(i).get("uuid"))
        .or_else(|| args.get("instance_uuid"))
        .and_then(Value::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tracing_subscriber::layer::SubscriberExt;

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn capture(json: bool, f: impl FnOnce()) -> Vec<String> {
        let buf = Buf::default();
        let out = buf.clone();
        let sub = tracing_subscriber::registry().with(RequestLayer).with(
            tracing_subscriber::fmt::layer()
                .event_format(OsloFormat::new(json, "host-1"))
                .with_writer(move || out.clone()),
        );
        tracing::subscriber::with_default(sub, f);
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        text.lines().map(str::to_string).collect()
    }

    /// `2026-12-02 05:44:15.045 4242 ` off the front of a line.
    fn after_pid(line: &str) -> &str {
        let mut parts = line.splitn(4, ' ');
        let (date, time, pid) = (
            parts.next().unwrap(),
            parts.next().unwrap(),
            parts.next().unwrap(),
        );
        assert_eq!(date.len(), 10, "{line}");
        assert!(
            chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").is_ok(),
            "{line}"
        );
        assert!(
            chrono::NaiveTime::parse_from_str(time, "%H:%M:%S%.3f").is_ok(),
            "{line}"
        );
        assert_eq!(time.len(), 12, "{line}");
        assert_eq!(pid, std::process::id().to_string(), "{line}");
        parts.next().unwrap()
    }

    #[test]
    fn a_line_about_a_request_names_it_as_oslo_log_does() {
        let lines = capture(false, || {
            let span = tracing::info_span!(
                REQUEST_SPAN,
                request_id = "req-1",
                global_request_id = tracing::field::Empty,
                user = "u1",
                project = "p1",
                user_domain = "default",
                project_domain = "default",
                instance = "inst-1"
            );
            let _g = span.enter();
            tracing::info!(image = "glance/x:latest", took = 1.5, "Instance spawned");
            tracing::warn!(instance = "inst-2", why = "a b", "other instance");
            tracing::debug!("quiet");
        });
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert_eq!(
            after_pid(&lines[0]),
            "INFO nova_docker.logging.tests [None req-1 u1 p1 - default default] [instance: inst-1] Instance spawned image=glance/x:latest took=1.5"
        );
        // an event's own instance wins over its span's; spaces are quoted
        assert_eq!(
            after_pid(&lines[1]),
            "WARNING nova_docker.logging.tests [None req-1 u1 p1 - default default] [instance: inst-2] other instance why=\"a b\""
        );
        assert!(after_pid(&lines[2]).starts_with("DEBUG "), "{}", lines[2]);
    }

    #[test]
    fn a_global_request_id_recorded_later_is_shown_and_no_request_is_a_dash() {
        let lines = capture(false, || {
            let span = tracing::info_span!(
                REQUEST_SPAN,
                request_id = "req-2",
                global_request_id = tracing::field::Empty
            );
            span.record("global_request_id", "req-g");
            span.in_scope(|| {
                let inner = tracing::info_span!("inner", step = 1);
                inner.in_scope(|| tracing::error!("failed"));
            });
            tracing::info!(n = 3, "registered");
        });
        assert_eq!(
            after_pid(&lines[0]),
            "ERROR nova_docker.logging.tests [req-g req-2 - - - - -] failed"
        );
        assert_eq!(
            after_pid(&lines[1]),
            "INFO nova_docker.logging.tests [-] registered n=3"
        );
    }

    #[test]
    fn json_lines_carry_the_keys_of_oslo_logs_json_formatter() {
        let lines = capture(true, || {
            let span = tracing::info_span!(
                REQUEST_SPAN,
                request_id = "req-3",
                user = "u",
                project = "p",
                instance = "i-3"
            );
            let _g = span.enter();
            tracing::info!(port = "p-1", "plugged");
        });
        let v: Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(v["message"], "plugged");
        assert_eq!(v["levelname"], "INFO");
        assert_eq!(v["levelno"], 20);
        assert_eq!(v["name"], "nova_docker.logging.tests");
        assert_eq!(v["hostname"], "host-1");
        assert_eq!(v["process"], std::process::id());
        assert_eq!(v["context"]["request_id"], "req-3");
        assert_eq!(v["context"]["user_identity"], "u p - - -");
        assert_eq!(v["extra"]["port"], "p-1");
        assert_eq!(v["extra"]["instance"]["uuid"], "i-3");
        assert!(v["asctime"].as_str().unwrap().len() == 23, "{v}");
        assert!(v["created"].as_f64().unwrap() > 1.7e9);
        assert!(v["lineno"].as_u64().is_some());
    }

    #[test]
    fn the_options_are_oslo_logs() {
        let ini = |t: &str| LogConfig::from_ini(&Ini::parse(t).unwrap()).unwrap();
        assert_eq!(ini(""), LogConfig::default());
        let c = ini("[DEFAULT]\ndebug = True\nuse_json = true\nlog_dir = /var/log/nova\nlog_file = compute.log\n");
        assert!(c.debug && c.use_json);
        assert_eq!(c.log_file, Some(PathBuf::from("/var/log/nova/compute.log")));
        assert_eq!(
            ini("[DEFAULT]\nlog_dir = /x\nlog_file = /abs.log\n").log_file,
            Some(PathBuf::from("/abs.log"))
        );
        assert!(c.default_filter().contains("nova_docker=debug"));
    }

    #[test]
    fn the_instance_of_a_request() {
        let of = |v: Value| instance_of(v.as_object().unwrap()).map(str::to_string);
        let a = json!({"instance": {"nova_object.name": "Instance", "nova_object.data": {"uuid": "u-1"}}});
        assert_eq!(of(a).as_deref(), Some("u-1"));
        assert_eq!(of(json!({"instance_uuid": "u-2"})).as_deref(), Some("u-2"));
        assert_eq!(
            of(json!({"instance": {"uuid": "u-3"}})).as_deref(),
            Some("u-3")
        );
        assert_eq!(of(json!({"image_ids": []})), None);
    }
}
