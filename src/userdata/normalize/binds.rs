//! Volumes: `HostConfig.Binds` entries, and the short `volumes` key's forms.

use serde_json::Value;

use super::values::{boolean, invalid, kind, nonempty, pascal, string, string_list};
use crate::userdata::{Empty, Set, UserDataError};

/// Where a bind's data comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BindSource {
    /// An absolute path on the host.
    HostPath(String),
    /// A named Docker volume.
    Named(String),
}

/// A `source:target[:mode]` bind as Docker reads `HostConfig.Binds`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bind {
    pub source: BindSource,
    pub target: String,
    pub modes: Vec<String>,
}

impl Bind {
    pub fn read_only(&self) -> bool {
        self.modes.iter().any(|m| m == "ro")
    }
}

const BIND_MODES: &[&str] = &[
    "ro",
    "rw",
    "z",
    "Z",
    "nocopy",
    "shared",
    "rshared",
    "slave",
    "rslave",
    "private",
    "rprivate",
    "consistent",
    "cached",
    "delegated",
];

fn valid_volume_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// Parse one `HostConfig.Binds` entry.
pub fn parse_bind(s: &str) -> Result<Bind, String> {
    let parts: Vec<&str> = s.split(':').collect();
    let (src, dst, mode) = match parts.as_slice() {
        [src, dst] => (*src, *dst, ""),
        [src, dst, mode] => (*src, *dst, *mode),
        [_] => {
            return Err(format!(
                "{s:?} has no target: write host-path:container-path (a container path alone is an anonymous volume)"
            ))
        }
        _ => return Err(format!("{s:?} is not source:target[:mode]")),
    };
    if !dst.starts_with('/') {
        return Err(format!(
            "{s:?}: the container path {dst:?} must be absolute"
        ));
    }
    let source = if src.starts_with('/') {
        BindSource::HostPath(src.to_string())
    } else if valid_volume_name(src) {
        BindSource::Named(src.to_string())
    } else {
        return Err(format!(
            "{s:?}: {src:?} is neither an absolute host path nor a volume name"
        ));
    };
    let modes: Vec<String> = mode
        .split(',')
        .filter(|m| !m.is_empty())
        .map(str::to_string)
        .collect();
    if let Some(bad) = modes.iter().find(|m| !BIND_MODES.contains(&m.as_str())) {
        return Err(format!(
            "{s:?}: unknown mode {bad:?} (valid: {})",
            BIND_MODES.join(", ")
        ));
    }
    Ok(Bind {
        source,
        target: dst.to_string(),
        modes,
    })
}

pub(super) fn container_path(p: &str, key: &str) -> Result<String, UserDataError> {
    if p.starts_with('/') && !p.contains('\0') {
        Ok(p.to_string())
    } else {
        Err(invalid(
            key,
            format!("the container path {p:?} must be absolute"),
        ))
    }
}

/// Binds and anonymous volumes out of the short `volumes` key (and the
/// lenient forms of `HostConfig.Binds`).
#[derive(Default)]
pub(super) struct Volumes {
    pub(super) anonymous: Vec<String>,
    pub(super) binds: Vec<String>,
}

pub(super) fn volumes(
    v: &Value,
    key: &str,
    allow_anonymous: bool,
) -> Result<Volumes, UserDataError> {
    let mut out = Volumes::default();
    let anon = |p: String, at: &str, out: &mut Volumes| {
        if allow_anonymous {
            out.anonymous.push(container_path(&p, at)?);
            Ok(())
        } else {
            Err(invalid(
                at,
                format!("{p:?} has no target: write host-path:container-path"),
            ))
        }
    };
    match v {
        Value::Null => {}
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let at = format!("{key}[{i}]");
                let Some(s) = nonempty(item, &at)? else {
                    continue;
                };
                if s.contains(':') {
                    parse_bind(&s).map_err(|e| invalid(&at, e))?;
                    out.binds.push(s);
                } else {
                    anon(s, &at, &mut out)?;
                }
            }
        }
        Value::String(s) => {
            return volumes(
                &Value::Array(vec![Value::String(s.clone())]),
                key,
                allow_anonymous,
            )
        }
        Value::Object(m) => {
            for (src, val) in m {
                let at = format!("{key}.{src}");
                let spec = match val {
                    Value::Null => {
                        anon(src.clone(), &at, &mut out)?;
                        continue;
                    }
                    Value::Object(o) if o.is_empty() => {
                        anon(src.clone(), &at, &mut out)?;
                        continue;
                    }
                    Value::String(dst) => format!("{src}:{dst}"),
                    // docker-py: {host: {bind: container, mode: ro}} or {bind, ro: true}
                    Value::Object(o) => {
                        let o = pascal(&Value::Object(o.clone()), &["bind", "mode", "ro"]);
                        let dst = o.get("bind").and_then(Value::as_str).ok_or_else(|| {
                            invalid(&at, "expected {bind: container-path, mode: ro|rw}")
                        })?;
                        let mode = match (o.get("mode"), o.get("ro")) {
                            (Some(m), _) => string(m, &format!("{at}.mode"))?.unwrap_or_default(),
                            (None, Some(ro)) => {
                                if boolean(ro, &format!("{at}.ro"))?.unwrap_or(false) {
                                    "ro".into()
                                } else {
                                    "rw".into()
                                }
                            }
                            _ => String::new(),
                        };
                        if mode.is_empty() {
                            format!("{src}:{dst}")
                        } else {
                            format!("{src}:{dst}:{mode}")
                        }
                    }
                    other => {
                        return Err(invalid(
                            &at,
                            format!("expected a container path, got {}", kind(other)),
                        ))
                    }
                };
                parse_bind(&spec).map_err(|e| invalid(&at, e))?;
                out.binds.push(spec);
            }
        }
        other => {
            return Err(invalid(
                key,
                format!("expected a list or a mapping, got {}", kind(other)),
            ))
        }
    }
    Ok(out)
}

pub(super) fn path_set(v: &Value, key: &str) -> Result<Option<Vec<String>>, UserDataError> {
    match v {
        Value::Null => Ok(None),
        Value::Object(m) => m
            .keys()
            .map(|p| container_path(p, &format!("{key}.{p}")))
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        other => {
            let list = string_list(other, key)?.unwrap_or_default();
            list.iter()
                .enumerate()
                .map(|(i, p)| container_path(p, &format!("{key}[{i}]")))
                .collect::<Result<Vec<_>, _>>()
                .map(Some)
        }
    }
}

pub(super) fn to_set(items: Vec<String>) -> Set {
    items.into_iter().map(|k| (k, Empty {})).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binds() {
        let b = parse_bind("/a:/b:ro,z").unwrap();
        assert!(b.read_only());
        assert_eq!(b.source, BindSource::HostPath("/a".into()));
        assert_eq!(
            parse_bind("v:/b").unwrap().source,
            BindSource::Named("v".into())
        );
    }
}
