//! Unwrapping user_data: the base64 Nova stores, then a MIME multipart document
//! (what Heat and cloud-init tooling send) down to the one part that may hold
//! container options.
//!
//! A part is chosen in this order: the part named `cfn-userdata` (Heat's
//! default `HEAT_CFNTOOLS` format puts the template's `user_data` there), else
//! the first part whose content type says JSON or YAML (`application/json`,
//! `text/x-yaml`, ...), else the part named `userdata` (Heat's
//! `SOFTWARE_CONFIG` format, typed `text/x-shellscript` whatever it holds).
//! Other parts (cloud-config, boothooks, part handlers) are never container
//! options; a chosen part that turns out to be a script is not either.

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;

/// Nested multiparts deeper than this are not followed.
const MAX_DEPTH: usize = 8;

const B64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Decode base64, ignoring whitespace (line-wrapped base64 is common) and
/// missing padding.
pub(crate) fn decode_base64(s: &str) -> Result<Vec<u8>, base64::DecodeError> {
    let compact: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    B64.decode(compact)
}

/// One leaf of a MIME document.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Part {
    /// Lower-cased `type/subtype`, `text/plain` when absent.
    pub content_type: String,
    /// `filename` of Content-Disposition, or `name` of Content-Type.
    pub filename: Option<String>,
    /// The body after Content-Transfer-Encoding.
    pub body: Vec<u8>,
}

/// Whether `data` starts like a MIME message (a header block whose first
/// header is a MIME one).
pub(crate) fn looks_like_mime(data: &[u8]) -> bool {
    let head: Vec<u8> = data.iter().take(64).copied().collect();
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    head.starts_with("content-type:") || head.starts_with("mime-version:")
}

/// The leaves of a MIME message, in document order.
pub(crate) fn leaves(data: &[u8]) -> Result<Vec<Part>, String> {
    let mut out = Vec::new();
    walk(data, 0, &mut out)?;
    Ok(out)
}

/// The part that may hold container options, with a label saying which it was.
pub(crate) fn select(parts: &[Part]) -> Option<&Part> {
    let named = |n: &str| parts.iter().find(|p| p.filename.as_deref() == Some(n));
    named("cfn-userdata")
        .or_else(|| parts.iter().find(|p| is_options_type(&p.content_type)))
        .or_else(|| named("userdata"))
}

fn is_options_type(ct: &str) -> bool {
    let sub = ct.split_once('/').map(|(_, s)| s).unwrap_or(ct);
    sub.contains("json") || sub.contains("yaml") || sub.contains("yml")
}

fn walk(data: &[u8], depth: usize, out: &mut Vec<Part>) -> Result<(), String> {
    if depth > MAX_DEPTH {
        return Err(format!("MIME parts nested deeper than {MAX_DEPTH} levels"));
    }
    let (headers, body) = split_headers(data);
    let ctype_raw = header(&headers, "content-type").unwrap_or("text/plain");
    let (ctype, params) = parse_params(ctype_raw);
    if ctype.starts_with("multipart/") {
        let boundary = params
            .iter()
            .find(|(k, _)| k == "boundary")
            .map(|(_, v)| v.clone())
            .filter(|b| !b.is_empty())
            .ok_or_else(|| format!("{ctype} without a boundary parameter"))?;
        for part in split_multipart(body, &boundary) {
            walk(part, depth + 1, out)?;
        }
        return Ok(());
    }
    let filename = header(&headers, "content-disposition")
        .and_then(|d| param(d, "filename"))
        .or_else(|| param(ctype_raw, "name"));
    let encoding = header(&headers, "content-transfer-encoding")
        .map(|e| e.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let body = match encoding.as_str() {
        "base64" => {
            let text = String::from_utf8_lossy(body);
            decode_base64(&text).map_err(|e| {
                format!(
                    "part {} is not valid base64: {e}",
                    filename.as_deref().unwrap_or(&ctype)
                )
            })?
        }
        "quoted-printable" => decode_qp(body),
        _ => body.to_vec(),
    };
    out.push(Part {
        content_type: ctype,
        filename,
        body,
    });
    Ok(())
}

/// Headers (unfolded, name lower-cased) and the body after the blank line.
fn split_headers(data: &[u8]) -> (Vec<(String, String)>, &[u8]) {
    let mut headers: Vec<(String, String)> = Vec::new();
    let mut pos = 0;
    while pos < data.len() {
        let end = data[pos..]
            .iter()
            .position(|&b| b == b'\n')
            .map(|i| pos + i + 1)
            .unwrap_or(data.len());
        let line_start = pos;
        let line = String::from_utf8_lossy(&data[pos..end]);
        let line = line.trim_end_matches(['\r', '\n']);
        pos = end;
        if line.is_empty() {
            return (headers, &data[pos..]);
        }
        if line.starts_with([' ', '\t']) {
            if let Some(last) = headers.last_mut() {
                last.1.push(' ');
                last.1.push_str(line.trim());
            }
            continue;
        }
        match line.split_once(':') {
            Some((k, v)) => headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string())),
            // Not a header line: the header block ended without a blank line.
            None => return (headers, &data[line_start..]),
        }
    }
    (headers, &data[data.len()..])
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// `type/subtype; a=b; c="d"` -> (lower-cased type, [(a, b), (c, d)]).
fn parse_params(v: &str) -> (String, Vec<(String, String)>) {
    let mut items = split_semicolons(v).into_iter();
    let ctype = items.next().unwrap_or_default().trim().to_ascii_lowercase();
    let params = items
        .filter_map(|p| {
            let (k, v) = p.split_once('=')?;
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(v);
            Some((k.trim().to_ascii_lowercase(), v.to_string()))
        })
        .collect();
    (ctype, params)
}

fn param(v: &str, name: &str) -> Option<String> {
    parse_params(v)
        .1
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

fn split_semicolons(v: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in v.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                cur.push(c);
            }
            ';' if !quoted => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    out.push(cur);
    out
}

/// The bodies between `--boundary` lines (preamble and epilogue dropped).
fn split_multipart<'a>(body: &'a [u8], boundary: &str) -> Vec<&'a [u8]> {
    let delim = format!("--{boundary}");
    let mut parts = Vec::new();
    let mut start: Option<usize> = None;
    let mut pos = 0;
    while pos < body.len() {
        let end = body[pos..]
            .iter()
            .position(|&b| b == b'\n')
            .map(|i| pos + i + 1)
            .unwrap_or(body.len());
        let line = &body[pos..end];
        let trimmed = trim_ascii_end(line);
        if trimmed.starts_with(delim.as_bytes()) {
            let rest = &trimmed[delim.len()..];
            let closing = rest.starts_with(b"--");
            if rest.is_empty() || closing {
                if let Some(s) = start {
                    // the line break before the delimiter belongs to it
                    let mut e = pos;
                    if e > s && body[e - 1] == b'\n' {
                        e -= 1;
                        if e > s && body[e - 1] == b'\r' {
                            e -= 1;
                        }
                    }
                    parts.push(&body[s..e]);
                }
                if closing {
                    return parts;
                }
                start = Some(end);
            }
        }
        pos = end;
    }
    // No closing delimiter: keep what the last part had.
    if let Some(s) = start {
        if s < body.len() {
            parts.push(&body[s..]);
        }
    }
    parts
}

fn trim_ascii_end(mut b: &[u8]) -> &[u8] {
    while let [rest @ .., last] = b {
        if last.is_ascii_whitespace() {
            b = rest;
        } else {
            break;
        }
    }
    b
}

fn decode_qp(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len());
    let mut i = 0;
    while i < body.len() {
        let b = body[i];
        if b == b'=' {
            // soft line break
            if body.get(i + 1) == Some(&b'\n') {
                i += 2;
                continue;
            }
            if body.get(i + 1) == Some(&b'\r') && body.get(i + 2) == Some(&b'\n') {
                i += 3;
                continue;
            }
            let hex = body.get(i + 1..i + 3).and_then(|h| {
                std::str::from_utf8(h)
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
            });
            if let Some(v) = hex {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAT_LIKE: &str = "Content-Type: multipart/mixed; boundary=\"===============1234==\"\nMIME-Version: 1.0\n\n--===============1234==\nContent-Type: text/cloud-config; charset=\"us-ascii\"\nMIME-Version: 1.0\nContent-Transfer-Encoding: 7bit\nContent-Disposition: attachment; filename=\"cloud-config\"\n\n#cloud-config\nuser: ec2-user\n\n--===============1234==\nContent-Type: text/x-cfninitdata; charset=\"utf-8\"\nMIME-Version: 1.0\nContent-Transfer-Encoding: base64\nContent-Disposition: attachment; filename=\"cfn-userdata\"\n\ndm9sdW1lcyA6CiAgL3RtcC90ZXN0MTEyMjMzIDogL3RtcC90ZXN0MTEyMjMzCg==\n\n--===============1234==--\n";

    #[test]
    fn heat_cfn_userdata_part_is_taken_and_base64_decoded() {
        assert!(looks_like_mime(HEAT_LIKE.as_bytes()));
        let parts = leaves(HEAT_LIKE.as_bytes()).unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].content_type, "text/cloud-config");
        let p = select(&parts).unwrap();
        assert_eq!(p.filename.as_deref(), Some("cfn-userdata"));
        assert_eq!(
            String::from_utf8(p.body.clone()).unwrap(),
            "volumes :\n  /tmp/test112233 : /tmp/test112233\n"
        );
    }

    #[test]
    fn typed_part_nested_and_crlf() {
        let doc = "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=AA\r\n\r\npreamble\r\n--AA\r\nContent-Type: text/x-shellscript\r\n\r\n#!/bin/sh\r\n--AA\r\nContent-Type: multipart/alternative;\r\n boundary=\"BB\"\r\n\r\n--BB\r\nContent-Type: application/json\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n{\"Cmd\": =\r\n[\"date\"]}=3D\r\n--BB--\r\n--AA--\r\n";
        let parts = leaves(doc.as_bytes()).unwrap();
        assert_eq!(parts.len(), 2);
        let p = select(&parts).unwrap();
        assert_eq!(p.content_type, "application/json");
        assert_eq!(p.body, b"{\"Cmd\": [\"date\"]}=");
    }

    #[test]
    fn heat_software_config_userdata_part() {
        let doc = "Content-Type: multipart/mixed; boundary=X\n\n--X\nContent-Type: text/cloud-config\nContent-Disposition: attachment; filename=\"cloud-config\"\n\n#cloud-config\n--X\nContent-Type: text/x-shellscript\nContent-Disposition: attachment; filename=\"userdata\"\n\ncommand: [date]\n--X--\n";
        let parts = leaves(doc.as_bytes()).unwrap();
        assert_eq!(select(&parts).unwrap().body, b"command: [date]");
    }

    #[test]
    fn no_options_part() {
        let doc = "Content-Type: multipart/mixed; boundary=X\n\n--X\nContent-Type: text/cloud-config\n\n#cloud-config\n--X--\n";
        let parts = leaves(doc.as_bytes()).unwrap();
        assert!(select(&parts).is_none());
        assert!(leaves(b"Content-Type: multipart/mixed\n\n").is_err());
    }

    #[test]
    fn base64_whitespace_and_padding() {
        assert_eq!(decode_base64("aGVs\nbG8").unwrap(), b"hello");
        assert!(decode_base64("!!!").is_err());
    }
}
