//! Text to a mapping: JSON when it is JSON, else YAML; user_data that is not
//! container options (scripts, cloud-config, plain text) is recognised as such.

use serde_json::{Map, Number, Value};

use super::normalize::is_known_key;
use super::UserDataError;

/// What a user_data text is.
#[derive(Debug, PartialEq)]
pub(crate) enum Parsed {
    /// A mapping: container options (still to be validated).
    Options(Map<String, Value>),
    /// Not container options; the reason is logged.
    NotOptions(&'static str),
}

/// First-line markers of user_data meant for cloud-init or a shell.
const NOT_OPTIONS_MARKERS: &[(&str, &str)] = &[
    ("#!", "a script"),
    ("#cloud-config", "cloud-config"),
    ("#cloud-boothook", "a cloud-init boothook"),
    ("#include", "a cloud-init include list"),
    ("#part-handler", "a cloud-init part handler"),
    ("#upstart-job", "an upstart job"),
    ("## template:", "a cloud-init template"),
    ("#ps1", "a PowerShell script"),
    ("<powershell>", "a PowerShell script"),
    ("<script>", "a Windows script"),
    ("rem cmd", "a Windows batch script"),
];

pub(crate) fn parse_text(text: &str) -> Result<Parsed, UserDataError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let trimmed = text.trim_start();
    if trimmed.is_empty() {
        return Ok(Parsed::NotOptions("empty"));
    }
    for (marker, what) in NOT_OPTIONS_MARKERS {
        if trimmed.len() >= marker.len()
            && trimmed.as_bytes()[..marker.len()].eq_ignore_ascii_case(marker.as_bytes())
        {
            return Ok(Parsed::NotOptions(what));
        }
    }
    if trimmed.starts_with('{') || trimmed.starts_with('[') {
        return match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(m)) => Ok(Parsed::Options(m)),
            Ok(_) => Ok(Parsed::NotOptions("JSON that is not a mapping")),
            // YAML flow style (`{a: 1}`) is not JSON but is YAML.
            Err(json_err) => match serde_yaml::from_str::<serde_yaml::Value>(text) {
                Ok(v) => from_yaml_doc(v),
                Err(_) => Err(UserDataError::Json {
                    line: json_err.line(),
                    column: json_err.column(),
                    reason: json_err.to_string(),
                }),
            },
        };
    }
    match serde_yaml::from_str::<serde_yaml::Value>(text) {
        Ok(v) => from_yaml_doc(v),
        Err(e) if looks_like_options(text) => Err(UserDataError::Yaml {
            reason: e.to_string(),
        }),
        Err(_) => Ok(Parsed::NotOptions("text that is neither JSON nor YAML")),
    }
}

fn from_yaml_doc(v: serde_yaml::Value) -> Result<Parsed, UserDataError> {
    match v {
        serde_yaml::Value::Mapping(_) => match yaml_to_json(v, "")? {
            Value::Object(m) => Ok(Parsed::Options(m)),
            _ => Ok(Parsed::NotOptions("YAML that is not a mapping")),
        },
        serde_yaml::Value::Null => Ok(Parsed::NotOptions("empty")),
        serde_yaml::Value::Tagged(t) => from_yaml_doc(t.value),
        _ => Ok(Parsed::NotOptions("YAML that is not a mapping")),
    }
}

/// Whether broken YAML was meant as container options: its first meaningful
/// line starts with a key of either vocabulary.
fn looks_like_options(text: &str) -> bool {
    let Some(line) = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#') && *l != "---")
    else {
        return false;
    };
    let Some((key, _)) = line.split_once(':') else {
        return false;
    };
    let key = key.trim().trim_matches(['"', '\'']);
    is_known_key(key)
}

fn scalar_key(k: serde_yaml::Value, path: &str) -> Result<String, UserDataError> {
    match k {
        serde_yaml::Value::String(s) => Ok(s),
        serde_yaml::Value::Number(n) => Ok(n.to_string()),
        serde_yaml::Value::Bool(b) => Ok(b.to_string()),
        serde_yaml::Value::Tagged(t) => scalar_key(t.value, path),
        other => Err(UserDataError::InvalidValue {
            key: if path.is_empty() {
                "(top level)".into()
            } else {
                path.to_string()
            },
            reason: format!("a mapping key must be a string, not {}", yaml_kind(&other)),
        }),
    }
}

fn yaml_kind(v: &serde_yaml::Value) -> &'static str {
    match v {
        serde_yaml::Value::Null => "null",
        serde_yaml::Value::Bool(_) => "a boolean",
        serde_yaml::Value::Number(_) => "a number",
        serde_yaml::Value::String(_) => "a string",
        serde_yaml::Value::Sequence(_) => "a list",
        serde_yaml::Value::Mapping(_) => "a mapping",
        serde_yaml::Value::Tagged(_) => "a tagged value",
    }
}

/// YAML to JSON: scalar keys become strings, tags are dropped.
pub(crate) fn yaml_to_json(v: serde_yaml::Value, path: &str) -> Result<Value, UserDataError> {
    Ok(match v {
        serde_yaml::Value::Null => Value::Null,
        serde_yaml::Value::Bool(b) => Value::Bool(b),
        serde_yaml::Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::Number(i.into())
            } else if let Some(u) = n.as_u64() {
                Value::Number(u.into())
            } else {
                match n.as_f64().and_then(Number::from_f64) {
                    Some(f) => Value::Number(f),
                    None => Value::String(n.to_string()),
                }
            }
        }
        serde_yaml::Value::String(s) => Value::String(s),
        serde_yaml::Value::Sequence(seq) => Value::Array(
            seq.into_iter()
                .enumerate()
                .map(|(i, v)| yaml_to_json(v, &format!("{path}[{i}]")))
                .collect::<Result<_, _>>()?,
        ),
        serde_yaml::Value::Mapping(m) => {
            let mut out = Map::new();
            for (k, v) in m {
                let k = scalar_key(k, path)?;
                let sub = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                let v = yaml_to_json(v, &sub)?;
                out.insert(k, v);
            }
            Value::Object(out)
        }
        serde_yaml::Value::Tagged(t) => yaml_to_json(t.value, path)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(t: &str) -> Map<String, Value> {
        match parse_text(t).unwrap() {
            Parsed::Options(m) => m,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn json_yaml_and_not_options() {
        assert_eq!(opts("{\"Cmd\": [\"date\"]}")["Cmd"][0], "date");
        assert_eq!(opts("{Cmd: [date]}")["Cmd"][0], "date");
        let m = opts("volumes :\n  /tmp/a : /tmp/b\nports: {80: 8080}\n");
        assert_eq!(m["volumes"]["/tmp/a"], "/tmp/b");
        assert_eq!(m["ports"]["80"], 8080);
        assert_eq!(
            opts("environment:\n    etcd: 10.144.192.168\n")["environment"]["etcd"],
            "10.144.192.168"
        );
        for t in [
            "#!/bin/sh\necho hi",
            "#cloud-config\nusers: []",
            "  \n",
            "hello world",
            "- a\n- b",
            "[1, 2]",
            "42",
            "---\n",
        ] {
            assert!(
                matches!(parse_text(t).unwrap(), Parsed::NotOptions(_)),
                "{t:?}"
            );
        }
        // broken text that is plainly not options is not an error
        assert!(matches!(
            parse_text("a: b: c\n").unwrap(),
            Parsed::NotOptions(_)
        ));
    }

    #[test]
    fn alias_bombs_and_deep_nesting_are_refused_quickly() {
        let mut bomb = String::from(
            "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
        );
        for (prev, name) in ["a", "b", "c", "d", "e", "f", "g", "h"]
            .iter()
            .zip(["b", "c", "d", "e", "f", "g", "h", "i"])
        {
            bomb.push_str(&format!("{name}: &{name} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]\n"));
        }
        bomb.insert_str(0, "command:\n  ");
        let bomb = bomb.replace('\n', "\n  ");
        assert!(parse_text(&bomb).is_err());
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(parse_text(&format!("{{\"Cmd\": {deep}}}")).is_err());
        let deep = format!("command: {}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(parse_text(&deep).is_err());
    }

    #[test]
    fn broken_options_are_errors_with_position() {
        let e = parse_text("{\"Cmd\": [\"date\"}").unwrap_err();
        assert!(matches!(e, UserDataError::Json { line: 1, .. }), "{e}");
        let e = parse_text("command: [unclosed\nuser: x\n").unwrap_err();
        assert!(e.to_string().contains("line"), "{e}");
        let e = parse_text("? [a, b]\n: c\n").unwrap_err();
        assert!(e.to_string().contains("mapping key"), "{e}");
    }
}
