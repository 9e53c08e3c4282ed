//! Configuration, read the way Nova reads nova.conf.
//!
//! [`Ini`] holds the layered files; [`Group`] reads typed options out of one
//! `[group]` with oslo.config's value syntax (True/False, comma lists,
//! `key:value` dicts, `$option` interpolation). Each module owns the options of
//! its own group (`XConfig::from_ini`); [`Config`] gathers the ones the daemon
//! needs at start-up. Options we do not know are ignored: nova.conf holds
//! hundreds that mean something only to Python nova-compute.

mod ini;

pub use ini::{Ini, Origin, RawValue};

use std::path::PathBuf;
use std::time::Duration;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read config {file}: {source}")]
    Read {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{origin}: {reason}")]
    Syntax { origin: Origin, reason: String },
    #[error("{origin}: option [{group}] {option}: {reason}")]
    Value {
        origin: Origin,
        group: String,
        option: String,
        reason: String,
    },
    #[error("option [{group}] {option}: {reason}")]
    Invalid {
        group: String,
        option: String,
        reason: String,
    },
}

/// Defaults that `$name` interpolation may refer to even when the file does not set them.
pub(crate) fn builtin_default(group: &str, key: &str) -> Option<String> {
    match (group, key) {
        (_, "state_path") => Some("/var/lib/nova".into()),
        (_, "pybasedir") => Some("/usr/lib/python3/dist-packages".into()),
        (_, "bindir") => Some("/usr/local/bin".into()),
        (_, "my_ip") => Some("127.0.0.1".into()),
        (_, "host") => Some(default_hostname()),
        _ => None,
    }
}

/// The machine's hostname, as oslo's `socket.gethostname()`.
pub fn default_hostname() -> String {
    hostname::get()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".into())
}

/// Typed read access to one `[group]`.
pub struct Group<'a> {
    ini: &'a Ini,
    name: &'a str,
}

impl Ini {
    pub fn group<'a>(&'a self, name: &'a str) -> Group<'a> {
        Group { ini: self, name }
    }
}

impl<'a> Group<'a> {
    pub fn name(&self) -> &str {
        self.name
    }

    fn err(&self, key: &str, raw: &RawValue, reason: String) -> ConfigError {
        ConfigError::Value {
            origin: raw.origin.clone(),
            group: self.name.to_string(),
            option: key.to_string(),
            reason,
        }
    }

    /// The interpolated string value, if the option is set.
    pub fn opt_str(&self, key: &str) -> Result<Option<String>, ConfigError> {
        match self.ini.raw(self.name, key) {
            Some(raw) => Ok(Some(self.ini.interpolate(self.name, raw)?)),
            None => Ok(None),
        }
    }

    pub fn str(&self, key: &str, default: &str) -> Result<String, ConfigError> {
        Ok(self.opt_str(key)?.unwrap_or_else(|| default.to_string()))
    }

    /// A string option that is unset or empty gives `None`.
    pub fn opt_nonempty(&self, key: &str) -> Result<Option<String>, ConfigError> {
        Ok(self.opt_str(key)?.filter(|s| !s.is_empty()))
    }

    pub fn bool(&self, key: &str, default: bool) -> Result<bool, ConfigError> {
        let Some(raw) = self.ini.raw(self.name, key) else {
            return Ok(default);
        };
        let v = self.ini.interpolate(self.name, raw)?;
        match v.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "on" | "yes" => Ok(true),
            "false" | "0" | "off" | "no" => Ok(false),
            other => Err(self.err(key, raw, format!("{other:?} is not a boolean (True/False)"))),
        }
    }

    pub fn opt_int(&self, key: &str) -> Result<Option<i64>, ConfigError> {
        let Some(raw) = self.ini.raw(self.name, key) else {
            return Ok(None);
        };
        let v = self.ini.interpolate(self.name, raw)?;
        if v.trim().is_empty() {
            return Ok(None);
        }
        v.trim()
            .parse::<i64>()
            .map(Some)
            .map_err(|_| self.err(key, raw, format!("{v:?} is not an integer")))
    }

    pub fn int(&self, key: &str, default: i64) -> Result<i64, ConfigError> {
        Ok(self.opt_int(key)?.unwrap_or(default))
    }

    /// An integer that must lie in `min..=max`.
    pub fn int_range(
        &self,
        key: &str,
        default: i64,
        min: i64,
        max: i64,
    ) -> Result<i64, ConfigError> {
        let v = self.int(key, default)?;
        if v < min || v > max {
            let raw = self
                .ini
                .raw(self.name, key)
                .expect("set, since out of range");
            return Err(self.err(key, raw, format!("{v} is outside {min}..={max}")));
        }
        Ok(v)
    }

    pub fn opt_float(&self, key: &str) -> Result<Option<f64>, ConfigError> {
        let Some(raw) = self.ini.raw(self.name, key) else {
            return Ok(None);
        };
        let v = self.ini.interpolate(self.name, raw)?;
        if v.trim().is_empty() {
            return Ok(None);
        }
        v.trim()
            .parse::<f64>()
            .map(Some)
            .map_err(|_| self.err(key, raw, format!("{v:?} is not a number")))
    }

    pub fn float(&self, key: &str, default: f64) -> Result<f64, ConfigError> {
        Ok(self.opt_float(key)?.unwrap_or(default))
    }

    /// Seconds as a [`Duration`] (integer option).
    pub fn secs(&self, key: &str, default: u64) -> Result<Duration, ConfigError> {
        let v = self.int(key, default as i64)?;
        if v < 0 {
            let raw = self.ini.raw(self.name, key).expect("set, since negative");
            return Err(self.err(key, raw, format!("{v} must not be negative")));
        }
        Ok(Duration::from_secs(v as u64))
    }

    /// A comma-separated list (ListOpt); unset gives `default`.
    pub fn list(&self, key: &str, default: &[&str]) -> Result<Vec<String>, ConfigError> {
        match self.opt_str(key)? {
            Some(v) => Ok(split_list(&v)),
            None => Ok(default.iter().map(|s| s.to_string()).collect()),
        }
    }

    /// Every occurrence of a repeatable option (MultiStrOpt), each interpolated.
    pub fn multi(&self, key: &str) -> Result<Vec<String>, ConfigError> {
        self.ini
            .all(self.name, key)
            .into_iter()
            .map(|r| self.ini.interpolate(self.name, r))
            .collect()
    }

    /// A `key:value,key2:value2` dict (DictOpt).
    pub fn dict(&self, key: &str) -> Result<Vec<(String, String)>, ConfigError> {
        let Some(raw) = self.ini.raw(self.name, key) else {
            return Ok(Vec::new());
        };
        let v = self.ini.interpolate(self.name, raw)?;
        split_list(&v)
            .into_iter()
            .map(|item| match item.split_once(':') {
                Some((k, v)) => Ok((k.trim().to_string(), v.trim().to_string())),
                None => Err(self.err(key, raw, format!("{item:?} is not key:value"))),
            })
            .collect()
    }

    /// A value that must be one of `choices`.
    pub fn choice(
        &self,
        key: &str,
        default: &str,
        choices: &[&str],
    ) -> Result<String, ConfigError> {
        let v = self.str(key, default)?;
        if choices.contains(&v.as_str()) {
            Ok(v)
        } else {
            let raw = self
                .ini
                .raw(self.name, key)
                .expect("set, since not the default");
            Err(self.err(key, raw, format!("{v:?} is not one of {choices:?}")))
        }
    }

    /// An error about an option of this group, naming where it was set.
    pub fn invalid(&self, key: &str, reason: impl Into<String>) -> ConfigError {
        match self.ini.raw(self.name, key) {
            Some(raw) => self.err(key, raw, reason.into()),
            None => ConfigError::Invalid {
                group: self.name.to_string(),
                option: key.to_string(),
                reason: reason.into(),
            },
        }
    }
}

/// Split a ListOpt value: commas, surrounding blanks trimmed, empty items dropped.
pub fn split_list(v: &str) -> Vec<String> {
    v.split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// `[DEFAULT]` options the daemon itself needs.
#[derive(Debug, Clone)]
pub struct DefaultConfig {
    pub host: String,
    pub transport_url: Option<String>,
    pub control_exchange: String,
    pub rpc_response_timeout: Duration,
    pub report_interval: Duration,
    pub service_down_time: Duration,
    pub debug: bool,
    pub state_path: PathBuf,
    pub my_ip: String,
    pub reserved_host_memory_mb: i64,
    pub reserved_host_disk_mb: i64,
    pub reserved_host_cpus: i64,
    pub cpu_allocation_ratio: Option<f64>,
    pub ram_allocation_ratio: Option<f64>,
    pub disk_allocation_ratio: Option<f64>,
    pub initial_cpu_allocation_ratio: f64,
    pub initial_ram_allocation_ratio: f64,
    pub initial_disk_allocation_ratio: f64,
    pub sync_power_state_interval: i64,
    /// Seconds between two heals of one instance's info cache from Neutron
    /// (`heal_instance_info_cache_interval`; Nova's default -1: off).
    pub heal_instance_info_cache_interval: i64,
    pub resource_tracker_interval: Duration,
    pub shutdown_timeout: Duration,
    /// How long a stop waits for running work (oslo.service's option; 0: no limit).
    pub graceful_shutdown_timeout: Duration,
    pub vif_plugging_timeout: Duration,
    pub vif_plugging_is_fatal: bool,
    pub max_concurrent_builds: usize,
    pub default_availability_zone: String,
    /// `running_deleted_instance_action` and `_timeout`.
    pub running_deleted: crate::compute::reap::RunningDeleted,
    /// Between two looks for containers of deleted instances
    /// (`running_deleted_instance_poll_interval`; 0: off).
    pub running_deleted_instance_poll_interval: Duration,
    /// `shelved_offload_time`: 0 offload at once, -1 never, N seconds after.
    pub shelved_offload_time: i64,
    /// Between two looks for shelved instances to offload (`shelved_poll_interval`).
    pub shelved_poll_interval: Duration,
}

impl DefaultConfig {
    pub fn from_ini(ini: &Ini) -> Result<Self, ConfigError> {
        let g = ini.group("DEFAULT");
        let report_interval = g.int_range("report_interval", 10, 1, 3600)? as u64;
        Ok(Self {
            host: g.opt_nonempty("host")?.unwrap_or_else(default_hostname),
            transport_url: g.opt_nonempty("transport_url")?,
            control_exchange: g.str("control_exchange", "nova")?,
            rpc_response_timeout: g.secs("rpc_response_timeout", 60)?,
            report_interval: Duration::from_secs(report_interval),
            service_down_time: g.secs("service_down_time", 60)?,
            debug: g.bool("debug", false)?,
            state_path: PathBuf::from(g.str("state_path", "/var/lib/nova")?),
            my_ip: g.str("my_ip", "127.0.0.1")?,
            reserved_host_memory_mb: g.int("reserved_host_memory_mb", 512)?,
            reserved_host_disk_mb: g.int("reserved_host_disk_mb", 0)?,
            reserved_host_cpus: g.int("reserved_host_cpus", 0)?,
            cpu_allocation_ratio: g.opt_float("cpu_allocation_ratio")?,
            ram_allocation_ratio: g.opt_float("ram_allocation_ratio")?,
            disk_allocation_ratio: g.opt_float("disk_allocation_ratio")?,
            initial_cpu_allocation_ratio: g.float("initial_cpu_allocation_ratio", 4.0)?,
            initial_ram_allocation_ratio: g.float("initial_ram_allocation_ratio", 1.0)?,
            initial_disk_allocation_ratio: g.float("initial_disk_allocation_ratio", 1.0)?,
            sync_power_state_interval: g.int("sync_power_state_interval", 600)?,
            heal_instance_info_cache_interval: g.int("heal_instance_info_cache_interval", -1)?,
            resource_tracker_interval: g.secs("update_resources_interval", 60)?,
            shutdown_timeout: g.secs("shutdown_timeout", 60)?,
            graceful_shutdown_timeout: match g.secs("graceful_shutdown_timeout", 60)? {
                d if d.is_zero() => Duration::MAX,
                d => d,
            },
            vif_plugging_timeout: g.secs("vif_plugging_timeout", 300)?,
            vif_plugging_is_fatal: g.bool("vif_plugging_is_fatal", true)?,
            max_concurrent_builds: g.int_range("max_concurrent_builds", 10, 0, 100000)? as usize,
            default_availability_zone: g.str("default_availability_zone", "nova")?,
            running_deleted: crate::compute::reap::RunningDeleted {
                action: crate::compute::reap::RunningDeletedAction::parse(&g.choice(
                    "running_deleted_instance_action",
                    "reap",
                    &["noop", "log", "shutdown", "reap"],
                )?)
                .expect("one of the choices"),
                timeout: g.secs("running_deleted_instance_timeout", 0)?,
            },
            running_deleted_instance_poll_interval: g
                .secs("running_deleted_instance_poll_interval", 1800)?,
            shelved_offload_time: g.int("shelved_offload_time", 0)?,
            shelved_poll_interval: g.secs("shelved_poll_interval", 3600)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ini(t: &str) -> Ini {
        Ini::parse(t).unwrap()
    }

    #[test]
    fn typed_values() {
        let i = ini("[DEFAULT]\ndebug = True\nreport_interval = 5\nx = a, b,,c\nd = k:v, k2:v2\n[g]\nf = 1.5\n");
        let g = i.group("DEFAULT");
        assert!(g.bool("debug", false).unwrap());
        assert_eq!(g.list("x", &[]).unwrap(), vec!["a", "b", "c"]);
        assert_eq!(g.dict("d").unwrap()[1], ("k2".into(), "v2".into()));
        assert_eq!(i.group("g").float("f", 0.0).unwrap(), 1.5);
        let d = DefaultConfig::from_ini(&i).unwrap();
        assert_eq!(d.report_interval, Duration::from_secs(5));
        assert_eq!(d.control_exchange, "nova");
        assert!(!d.host.is_empty());
    }

    #[test]
    fn bad_values_name_file_line_and_option() {
        let i = ini("[DEFAULT]\n\ndebug = maybe\n");
        let e = DefaultConfig::from_ini(&i).unwrap_err().to_string();
        assert!(
            e.contains("nova.conf:3") && e.contains("debug") && e.contains("maybe"),
            "{e}"
        );
        let i = ini("[DEFAULT]\nreport_interval = ten\n");
        let e = DefaultConfig::from_ini(&i).unwrap_err().to_string();
        assert!(
            e.contains("nova.conf:2") && e.contains("report_interval"),
            "{e}"
        );
        let i = ini("[DEFAULT]\nreport_interval = 0\n");
        assert!(DefaultConfig::from_ini(&i).is_err());
    }

    #[test]
    fn unknown_options_are_ignored() {
        let i = ini("[DEFAULT]\ncompute_driver = libvirt.LibvirtDriver\nhost = h\n[libvirt]\nvirt_type = kvm\n");
        assert_eq!(DefaultConfig::from_ini(&i).unwrap().host, "h");
    }
}
