//! Values read leniently in the forms people write them, strictly in what
//! they mean: each reader names the key of a value it cannot understand.

use serde_json::{Map, Value};

use crate::userdata::UserDataError;

pub(super) fn invalid(key: &str, reason: impl Into<String>) -> UserDataError {
    UserDataError::InvalidValue {
        key: key.to_string(),
        reason: reason.into(),
    }
}

pub(super) fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

pub(super) fn squash(s: &str) -> String {
    s.replace(['_', '-'], "").to_ascii_lowercase()
}

pub(super) fn string(v: &Value, key: &str) -> Result<Option<String>, UserDataError> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        Value::Number(n) => Ok(Some(n.to_string())),
        Value::Bool(b) => Ok(Some(b.to_string())),
        other => Err(invalid(
            key,
            format!("expected a string, got {}", kind(other)),
        )),
    }
}

/// A string where "" means unset (as Docker reads it).
pub(super) fn nonempty(v: &Value, key: &str) -> Result<Option<String>, UserDataError> {
    Ok(string(v, key)?.filter(|s| !s.is_empty()))
}

pub(super) fn boolean(v: &Value, key: &str) -> Result<Option<bool>, UserDataError> {
    match v {
        Value::Null => Ok(None),
        Value::Bool(b) => Ok(Some(*b)),
        Value::Number(n) if n.as_i64() == Some(0) => Ok(Some(false)),
        Value::Number(n) if n.as_i64() == Some(1) => Ok(Some(true)),
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" | "1" => Ok(Some(true)),
            "false" | "no" | "off" | "0" => Ok(Some(false)),
            _ => Err(invalid(key, format!("expected true or false, got {s:?}"))),
        },
        other => Err(invalid(
            key,
            format!("expected true or false, got {}", kind(other)),
        )),
    }
}

pub(super) fn integer(v: &Value, key: &str) -> Result<Option<i64>, UserDataError> {
    match v {
        Value::Null => Ok(None),
        Value::Number(n) => n
            .as_i64()
            .or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                    .map(|f| f as i64)
            })
            .map(Some)
            .ok_or_else(|| invalid(key, format!("expected an integer, got {n}"))),
        Value::String(s) => s
            .trim()
            .parse::<i64>()
            .map(Some)
            .map_err(|_| invalid(key, format!("expected an integer, got {s:?}"))),
        other => Err(invalid(
            key,
            format!("expected an integer, got {}", kind(other)),
        )),
    }
}

/// Bytes: an integer, or a size with a unit as docker-py and the CLI take
/// them (`512m`, `1g`, `100k`, `1.5gb`).
pub(super) fn bytes(v: &Value, key: &str) -> Result<Option<i64>, UserDataError> {
    let Value::String(s) = v else {
        return integer(v, key);
    };
    let t = s.trim().to_ascii_lowercase();
    if let Ok(n) = t.parse::<i64>() {
        return Ok(Some(n));
    }
    let bad = || {
        invalid(
            key,
            format!("expected a size in bytes or with a unit (512m, 1g), got {s:?}"),
        )
    };
    let num_end = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(bad)?;
    let (num, unit) = t.split_at(num_end);
    let mult: f64 = match unit.trim() {
        "b" => 1.0,
        "k" | "kb" | "kib" => 1024.0,
        "m" | "mb" | "mib" => 1024.0 * 1024.0,
        "g" | "gb" | "gib" => 1024.0 * 1024.0 * 1024.0,
        "t" | "tb" | "tib" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return Err(bad()),
    };
    let n: f64 = num.parse().map_err(|_| bad())?;
    let total = (n * mult).round();
    if !total.is_finite() || total >= 9.0e18 {
        return Err(bad());
    }
    Ok(Some(total as i64))
}

/// A list of strings; a single string is a list of one; empty strings dropped.
pub(super) fn string_list(v: &Value, key: &str) -> Result<Option<Vec<String>>, UserDataError> {
    match v {
        Value::Null => Ok(None),
        Value::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                match string(item, &format!("{key}[{i}]"))? {
                    Some(s) if !s.is_empty() => out.push(s),
                    _ => {}
                }
            }
            Ok(Some(out))
        }
        Value::String(s) if s.is_empty() => Ok(Some(Vec::new())),
        other => Ok(Some(vec![string(other, key)?.unwrap_or_default()])),
    }
}

/// A command: a list, or a string split the way a shell splits words.
pub(super) fn command(v: &Value, key: &str) -> Result<Option<Vec<String>>, UserDataError> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) => {
            if s.trim().is_empty() {
                return Ok(None);
            }
            let words = shell_words::split(s)
                .map_err(|e| invalid(key, format!("cannot split {s:?} into words: {e}")))?;
            Ok(Some(words))
        }
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| string(item, &format!("{key}[{i}]")).map(|s| s.unwrap_or_default()))
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        other => Err(invalid(
            key,
            format!(
                "expected a string or a list of strings, got {}",
                kind(other)
            ),
        )),
    }
}

/// Environment: a mapping, or a list of `NAME=value`.
pub(super) fn env(v: &Value, key: &str) -> Result<Option<Vec<String>>, UserDataError> {
    let check_name = |name: &str, at: &str| {
        if name.is_empty() || name.contains('=') || name.contains('\0') {
            Err(invalid(at, format!("{name:?} is not a variable name")))
        } else {
            Ok(())
        }
    };
    match v {
        Value::Null => Ok(None),
        Value::Object(m) => {
            let mut out = Vec::with_capacity(m.len());
            for (name, val) in m {
                let at = format!("{key}.{name}");
                check_name(name, &at)?;
                let val = match val {
                    Value::Object(_) | Value::Array(_) => {
                        return Err(invalid(
                            &at,
                            format!("expected a plain value, got {}", kind(val)),
                        ))
                    }
                    other => string(other, &at)?.unwrap_or_default(),
                };
                out.push(format!("{name}={val}"));
            }
            Ok(Some(out))
        }
        Value::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let at = format!("{key}[{i}]");
                let Value::String(s) = item else {
                    return Err(invalid(
                        &at,
                        format!("expected NAME=value, got {}", kind(item)),
                    ));
                };
                if s.is_empty() {
                    continue;
                }
                check_name(s.split('=').next().unwrap_or(""), &at)?;
                out.push(s.clone());
            }
            Ok(Some(out))
        }
        other => Err(invalid(
            key,
            format!(
                "expected a mapping or a list of NAME=value, got {}",
                kind(other)
            ),
        )),
    }
}

/// A string-to-string mapping; a list of `k=v` is accepted too.
pub(super) fn string_map(
    v: &Value,
    key: &str,
) -> Result<Option<Map<String, Value>>, UserDataError> {
    match v {
        Value::Null => Ok(None),
        Value::Object(m) => {
            let mut out = Map::new();
            for (k, val) in m {
                let at = format!("{key}.{k}");
                let s = match val {
                    Value::Object(_) | Value::Array(_) => {
                        return Err(invalid(
                            &at,
                            format!("expected a plain value, got {}", kind(val)),
                        ))
                    }
                    other => string(other, &at)?.unwrap_or_default(),
                };
                out.insert(k.clone(), Value::String(s));
            }
            Ok(Some(out))
        }
        Value::Array(items) => {
            let mut out = Map::new();
            for (i, item) in items.iter().enumerate() {
                let at = format!("{key}[{i}]");
                let s = string(item, &at)?.unwrap_or_default();
                if s.is_empty() {
                    continue;
                }
                let (k, val) = s.split_once('=').unwrap_or((s.as_str(), ""));
                out.insert(k.to_string(), Value::String(val.to_string()));
            }
            Ok(Some(out))
        }
        other => Err(invalid(
            key,
            format!("expected a mapping, got {}", kind(other)),
        )),
    }
}

pub(super) fn object<'a>(
    v: &'a Value,
    key: &str,
) -> Result<Option<&'a Map<String, Value>>, UserDataError> {
    match v {
        Value::Null => Ok(None),
        Value::Object(m) => Ok(Some(m)),
        other => Err(invalid(
            key,
            format!("expected a mapping, got {}", kind(other)),
        )),
    }
}

/// Rename keys that match `known` ignoring case and underscores (either
/// casing: `maximum_retry_count` -> `MaximumRetryCount`).
pub(super) fn pascal(v: &Value, known: &[&str]) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, val)| {
                    let sq = squash(k);
                    let name = known
                        .iter()
                        .find(|n| squash(n) == sq)
                        .map(|n| n.to_string())
                        .unwrap_or_else(|| k.clone());
                    (name, val.clone())
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

pub(super) fn list_value(v: Option<Vec<String>>) -> Option<Value> {
    v.map(|l| Value::Array(l.into_iter().map(Value::String).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sizes() {
        assert_eq!(bytes(&json!("512m"), "k").unwrap(), Some(512 << 20));
        assert_eq!(bytes(&json!("1.5g"), "k").unwrap(), Some(1536 << 20));
        assert_eq!(bytes(&json!(-1), "k").unwrap(), Some(-1));
        assert_eq!(bytes(&json!("100KB"), "k").unwrap(), Some(102400));
    }
}
