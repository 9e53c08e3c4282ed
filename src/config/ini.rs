//! oslo.config INI syntax.
//!
//! Hand-written rather than taken from an INI crate because oslo.config has rules
//! that generic INI readers do not follow: a key may repeat (MultiStrOpt, each
//! occurrence kept in order), indented lines continue the previous value,
//! `$option` / `${group.option}` interpolation, `#` and `;` comment lines only at
//! the start of a line (a `#` inside a value is data: passwords contain them),
//! and several files (plus a config dir) layered so that later files win.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::ConfigError;

/// Where a value came from, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub file: PathBuf,
    pub line: usize,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// One raw value with its origin.
#[derive(Debug, Clone)]
pub struct RawValue {
    pub value: String,
    pub origin: Origin,
}

/// The merged content of every config file: section -> key -> values (a key
/// repeated inside one file keeps all its values; a later file replaces them).
#[derive(Debug, Default, Clone)]
pub struct Ini {
    sections: BTreeMap<String, BTreeMap<String, Vec<RawValue>>>,
}

impl Ini {
    /// Parse and layer `files` in order, then the `*.conf` files of each dir in
    /// name order (as oslo.config does for `--config-dir`).
    pub fn load(files: &[PathBuf], dirs: &[PathBuf]) -> Result<Self, ConfigError> {
        let mut ini = Ini::default();
        for f in files {
            let text = std::fs::read_to_string(f).map_err(|e| ConfigError::Read {
                file: f.clone(),
                source: e,
            })?;
            ini.merge_text(&text, f)?;
        }
        for d in dirs {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(d)
                .map_err(|e| ConfigError::Read {
                    file: d.clone(),
                    source: e,
                })?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "conf"))
                .collect();
            entries.sort();
            for f in entries {
                let text = std::fs::read_to_string(&f).map_err(|e| ConfigError::Read {
                    file: f.clone(),
                    source: e,
                })?;
                ini.merge_text(&text, &f)?;
            }
        }
        Ok(ini)
    }

    /// One file's text, named `nova.conf` in errors (tests and tools).
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let mut ini = Ini::default();
        ini.merge_text(text, Path::new("nova.conf"))?;
        Ok(ini)
    }

    /// Parse one file's text and layer it over what is already there.
    pub fn merge_text(&mut self, text: &str, file: &Path) -> Result<(), ConfigError> {
        let mut this_file: BTreeMap<String, BTreeMap<String, Vec<RawValue>>> = BTreeMap::new();
        let mut section: Option<String> = None;
        let mut last_key: Option<(String, String)> = None;
        for (i, raw_line) in text.lines().enumerate() {
            let lineno = i + 1;
            let origin = Origin {
                file: file.to_path_buf(),
                line: lineno,
            };
            let line = raw_line.trim_end();
            let trimmed = line.trim_start();
            if trimmed.is_empty() {
                last_key = None;
                continue;
            }
            if trimmed.starts_with('#') || trimmed.starts_with(';') {
                continue;
            }
            let indented = line.len() != trimmed.len();
            if indented {
                if let (Some((s, k)), Some(_)) = (&last_key, &section) {
                    // continuation of the previous value
                    if let Some(v) = this_file
                        .get_mut(s)
                        .and_then(|m| m.get_mut(k))
                        .and_then(|v| v.last_mut())
                    {
                        if !v.value.is_empty() {
                            v.value.push('\n');
                        }
                        v.value.push_str(trimmed);
                        continue;
                    }
                }
                return Err(ConfigError::Syntax {
                    origin,
                    reason: "unexpected continuation line".into(),
                });
            }
            if let Some(rest) = trimmed.strip_prefix('[') {
                let Some(name) = rest.strip_suffix(']') else {
                    return Err(ConfigError::Syntax {
                        origin,
                        reason: format!("invalid section header {trimmed:?}"),
                    });
                };
                let name = name.trim();
                if name.is_empty() {
                    return Err(ConfigError::Syntax {
                        origin,
                        reason: "empty section name".into(),
                    });
                }
                section = Some(name.to_string());
                this_file.entry(name.to_string()).or_default();
                last_key = None;
                continue;
            }
            let Some(sec) = section.clone() else {
                return Err(ConfigError::Syntax {
                    origin,
                    reason: "a key before any [section] header".into(),
                });
            };
            let (key, value) = match (trimmed.find('='), trimmed.find(':')) {
                (Some(e), Some(c)) if c < e => trimmed.split_at(c),
                (Some(e), _) => trimmed.split_at(e),
                (None, Some(c)) => trimmed.split_at(c),
                (None, None) => {
                    return Err(ConfigError::Syntax {
                        origin,
                        reason: format!("expected 'key = value', found {trimmed:?}"),
                    })
                }
            };
            let key = key.trim().to_string();
            if key.is_empty() {
                return Err(ConfigError::Syntax {
                    origin,
                    reason: "empty key".into(),
                });
            }
            let mut value = value[1..].trim().to_string();
            // oslo.config strips one pair of matching quotes around a value
            if value.len() >= 2
                && ((value.starts_with('"') && value.ends_with('"'))
                    || (value.starts_with('\'') && value.ends_with('\'')))
            {
                value = value[1..value.len() - 1].to_string();
            }
            this_file
                .entry(sec.clone())
                .or_default()
                .entry(key.clone())
                .or_default()
                .push(RawValue { value, origin });
            last_key = Some((sec, key));
        }
        for (sec, keys) in this_file {
            let target = self.sections.entry(sec).or_default();
            for (k, v) in keys {
                target.insert(k, v);
            }
        }
        Ok(())
    }

    /// The last value of `group.key`, interpolated; `None` if unset.
    pub fn raw(&self, group: &str, key: &str) -> Option<&RawValue> {
        self.sections
            .get(group)
            .and_then(|m| m.get(key))
            .and_then(|v| v.last())
    }

    /// Every value of a key that may repeat (MultiStrOpt).
    pub fn all(&self, group: &str, key: &str) -> Vec<&RawValue> {
        self.sections
            .get(group)
            .and_then(|m| m.get(key))
            .map(|v| v.iter().collect())
            .unwrap_or_default()
    }

    pub fn has_section(&self, group: &str) -> bool {
        self.sections.contains_key(group)
    }

    /// Interpolate `$name`, `${name}` and `${group.name}` (looked up in the
    /// same group, then DEFAULT); `$$` is a literal dollar.
    pub fn interpolate(&self, group: &str, v: &RawValue) -> Result<String, ConfigError> {
        self.interpolate_depth(group, v, 0)
    }

    fn interpolate_depth(
        &self,
        group: &str,
        v: &RawValue,
        depth: usize,
    ) -> Result<String, ConfigError> {
        if depth > 16 {
            return Err(ConfigError::Syntax {
                origin: v.origin.clone(),
                reason: "interpolation loop".into(),
            });
        }
        let s = &v.value;
        if !s.contains('$') {
            return Ok(s.clone());
        }
        let mut out = String::with_capacity(s.len());
        let mut chars = s.char_indices().peekable();
        while let Some((_, c)) = chars.next() {
            if c != '$' {
                out.push(c);
                continue;
            }
            match chars.peek() {
                Some((_, '$')) => {
                    chars.next();
                    out.push('$');
                }
                Some((_, '{')) => {
                    chars.next();
                    let mut name = String::new();
                    let mut closed = false;
                    for (_, c) in chars.by_ref() {
                        if c == '}' {
                            closed = true;
                            break;
                        }
                        name.push(c);
                    }
                    if !closed {
                        return Err(ConfigError::Syntax {
                            origin: v.origin.clone(),
                            reason: "unterminated ${...}".into(),
                        });
                    }
                    out.push_str(&self.lookup_ref(group, &name, v, depth)?);
                }
                Some((_, c)) if c.is_ascii_alphanumeric() || *c == '_' => {
                    let mut name = String::new();
                    while let Some((_, c)) = chars.peek() {
                        if c.is_ascii_alphanumeric() || *c == '_' {
                            name.push(*c);
                            chars.next();
                        } else {
                            break;
                        }
                    }
                    out.push_str(&self.lookup_ref(group, &name, v, depth)?);
                }
                _ => out.push('$'),
            }
        }
        Ok(out)
    }

    fn lookup_ref(
        &self,
        group: &str,
        name: &str,
        v: &RawValue,
        depth: usize,
    ) -> Result<String, ConfigError> {
        let (g, k) = match name.split_once('.') {
            Some((g, k)) => (g, k),
            None => (group, name),
        };
        let found = self
            .raw(g, k)
            .map(|r| (g, r))
            .or_else(|| self.raw("DEFAULT", k).map(|r| ("DEFAULT", r)));
        match found {
            Some((g, r)) => self.interpolate_depth(g, r, depth + 1),
            None => match super::builtin_default(g, k) {
                Some(d) => Ok(d),
                None => Err(ConfigError::Value {
                    origin: v.origin.clone(),
                    group: group.to_string(),
                    option: name.to_string(),
                    reason: format!("refers to ${name}, which is not set"),
                }),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(t: &str) -> Ini {
        let mut i = Ini::default();
        i.merge_text(t, Path::new("test.conf")).unwrap();
        i
    }

    #[test]
    fn sections_comments_continuations_and_quotes() {
        let i = parse(
            "# comment\n[DEFAULT]\nhost = h1\n; other\npassword = a#b\nmulti = one\n  two\n[x]\nq = \"quoted\"\nk: v\n",
        );
        assert_eq!(i.raw("DEFAULT", "host").unwrap().value, "h1");
        assert_eq!(i.raw("DEFAULT", "password").unwrap().value, "a#b");
        assert_eq!(i.raw("DEFAULT", "multi").unwrap().value, "one\ntwo");
        assert_eq!(i.raw("x", "q").unwrap().value, "quoted");
        assert_eq!(i.raw("x", "k").unwrap().value, "v");
    }

    #[test]
    fn later_files_override_and_repeats_are_kept() {
        let mut i = parse("[DEFAULT]\nhost = a\nx = 1\nx = 2\n");
        assert_eq!(i.all("DEFAULT", "x").len(), 2);
        i.merge_text("[DEFAULT]\nhost = b\n", Path::new("b.conf"))
            .unwrap();
        assert_eq!(i.raw("DEFAULT", "host").unwrap().value, "b");
        assert_eq!(
            i.raw("DEFAULT", "host").unwrap().origin.file,
            Path::new("b.conf")
        );
        assert_eq!(i.raw("DEFAULT", "x").unwrap().value, "2");
    }

    #[test]
    fn interpolation() {
        let i = parse("[DEFAULT]\nstate_path = /var/lib/nova\nlock = $state_path/lock\nb = ${state_path}x\nd = $$5\n[g]\nz = ${DEFAULT.lock}/z\n");
        let v = |g: &str, k: &str| i.interpolate(g, i.raw(g, k).unwrap()).unwrap();
        assert_eq!(v("DEFAULT", "lock"), "/var/lib/nova/lock");
        assert_eq!(v("DEFAULT", "b"), "/var/lib/novax");
        assert_eq!(v("DEFAULT", "d"), "$5");
        assert_eq!(v("g", "z"), "/var/lib/nova/lock/z");
    }

    #[test]
    fn errors_name_file_and_line() {
        let mut i = Ini::default();
        let e = i
            .merge_text(
                "[DEFAULT]\nhost = a\nnonsense\n",
                Path::new("/etc/nova/nova.conf"),
            )
            .unwrap_err();
        assert!(e.to_string().contains("/etc/nova/nova.conf:3"), "{e}");
        let e = i.merge_text("x = 1\n", Path::new("f.conf")).unwrap_err();
        assert!(e.to_string().contains("f.conf:1"), "{e}");
        let e = i.merge_text("[DEFAULT\n", Path::new("f.conf")).unwrap_err();
        assert!(e.to_string().contains("section"), "{e}");
    }
}
