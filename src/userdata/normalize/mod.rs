//! Both vocabularies to one options document ([`ContainerOptions`](super::ContainerOptions)).
//!
//! Values are read leniently in the forms people write (a command as a string
//! or a list, environment as a map or `K=V` list, volumes and ports in the
//! `docker run` notations), and strictly in what they mean: a value that
//! cannot be understood is an error naming the key, never silently dropped.
//!
//! - [`keys`]: the keys of both vocabularies;
//! - [`short`] and [`docker`]: each vocabulary to the options document;
//! - [`host_config`]: `HostConfig` in either casing, field by field;
//! - [`binds`], [`ports`]: the `docker run` notations of volumes and ports;
//! - [`values`]: the lenient readers of single values.

mod binds;
mod docker;
mod host_config;
mod keys;
mod ports;
mod short;
mod values;

use serde_json::{Map, Value};

pub use binds::{parse_bind, Bind, BindSource};
pub(crate) use keys::is_known_key;
pub use keys::{DOCKER_KEYS, HOST_CONFIG_KEYS, SHORT_KEYS};

use super::{UserDataError, UserOptions, Vocabulary};
use docker::docker_body;
use keys::check_keys;
use short::short_body;

pub(crate) fn normalize(map: Map<String, Value>) -> Result<UserOptions, UserDataError> {
    let (docker, short): (Vec<&String>, Vec<&String>) = map
        .keys()
        .partition(|k| k.starts_with(|c: char| c.is_ascii_uppercase()));
    if !docker.is_empty() && !short.is_empty() {
        return Err(UserDataError::MixedVocabularies {
            docker_keys: docker.into_iter().cloned().collect(),
            short_keys: short.into_iter().cloned().collect(),
        });
    }
    if docker.is_empty() {
        check_keys(&map, Vocabulary::Short, SHORT_KEYS)?;
        short_body(map)
    } else {
        check_keys(&map, Vocabulary::Docker, DOCKER_KEYS)?;
        docker_body(map)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::userdata::HostOptions;
    use serde_json::json;

    pub(super) fn norm(v: Value) -> Result<UserOptions, UserDataError> {
        match v {
            Value::Object(m) => normalize(m),
            _ => panic!("not a mapping"),
        }
    }

    pub(super) fn hc(o: &UserOptions) -> &HostOptions {
        o.body.host_config.as_ref().expect("host config")
    }

    #[test]
    fn vocabulary_errors() {
        let e = norm(json!({"Cmd": ["a"], "command": "b"})).unwrap_err();
        assert!(matches!(e, UserDataError::MixedVocabularies { .. }), "{e}");
        let e = norm(json!({"command": "a", "bogus": 1, "hostname": "h"}))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("bogus") && e.contains("hostname") && e.contains("working_dir"),
            "{e}"
        );
        assert!(e.contains("set by Nova"), "{e}");
        let e = norm(json!({"Dns": ["1.1.1.1"]})).unwrap_err().to_string();
        assert!(e.contains("belongs inside HostConfig"), "{e}");
        let e = norm(json!({"HostConfig": {"Bogus": 1}}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("Bogus") && e.contains("CapAdd"), "{e}");
        let e = norm(json!({"HostConfig": {"Privileged": "maybe"}}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("HostConfig.Privileged"), "{e}");
        let e = norm(json!({"host_config": {"binds": [], "Binds": []}}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("both set Binds"), "{e}");
        let e = norm(json!({"cpuset": "0", "host_config": {"cpuset_cpus": "1"}}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("CpusetCpus"), "{e}");
    }

    #[test]
    fn bad_values_name_the_key() {
        for (v, key) in [
            (json!({"command": "echo 'unclosed"}), "command"),
            (json!({"ports": ["99999"]}), "ports[0]"),
            (json!({"ports": ["1:2:3:4"]}), "ports[0]"),
            (json!({"ports": ["80/xyz"]}), "ports[0]"),
            (json!({"ports": ["1-5000"]}), "ports[0]"),
            (json!({"volumes": ["./rel:/x"]}), "volumes[0]"),
            (json!({"volumes": ["/x:rel"]}), "volumes[0]"),
            (json!({"volumes": ["/x:/y:bogus"]}), "volumes[0]"),
            (json!({"volumes": ["rel"]}), "volumes[0]"),
            (json!({"environment": ["=x"]}), "environment[0]"),
            (json!({"environment": "A=1"}), "environment"),
            (json!({"memswap_limit": "lots"}), "memswap_limit"),
            (json!({"tty": "maybe"}), "tty"),
            (json!({"Env": [{"a": 1}]}), "Env[0]"),
            (json!({"Memory": []}), "Memory"),
            (
                json!({"HostConfig": {"Binds": ["/only"]}}),
                "HostConfig.Binds[0]",
            ),
            (
                json!({"HostConfig": {"RestartPolicy": "sometimes"}}),
                "HostConfig.RestartPolicy",
            ),
            (json!({"HostConfig": []}), "HostConfig"),
        ] {
            let e = norm(v.clone()).unwrap_err();
            match &e {
                UserDataError::InvalidValue { key: k, .. } => assert_eq!(k, key, "{v}: {e}"),
                other => panic!("{v}: {other}"),
            }
        }
    }
}
