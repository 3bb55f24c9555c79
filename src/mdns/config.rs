//! The `[mdns]` table: what is advertised over multicast DNS, and where.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The TXT keys discoveryd sets itself, so that a zeroconf client can
/// find the classic responder too.
pub(crate) const RESERVED_TXT: [&str; 2] = ["port", "message"];

/// The longest TXT entry (`key=value`), RFC 6763 section 6.1.
pub(crate) const MAX_TXT_ENTRY: usize = 255;

/// The longest instance name: a DNS label (63 bytes) less room for the
/// ` (999)` mdns-sd appends when it renames an instance after a conflict.
pub(crate) const MAX_INSTANCE: usize = 63 - " (999)".len();

/// The longest host label: 63 bytes less room for the `-999` mdns-sd
/// appends when it renames a host after a conflict.
pub(crate) const MAX_HOST_LABEL: usize = 63 - "-999".len();

/// Advertising over mDNS/DNS-SD (RFC 6762, RFC 6763).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Mdns {
    /// Whether the service is advertised over mDNS.
    pub enabled: bool,
    /// The DNS-SD service type, such as `_discoveryd._udp`.
    pub service_type: String,
    /// The instance name; unset: the host name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// Only these interfaces (by name); empty: every interface but loopback.
    pub interfaces: Vec<String>,
    /// Never these interfaces (by name).
    pub exclude_interfaces: Vec<String>,
    /// Extra TXT entries; `port` and `message` are always set by discoveryd.
    pub txt: BTreeMap<String, String>,
}

impl Default for Mdns {
    fn default() -> Self {
        Self {
            enabled: false,
            service_type: "_discoveryd._udp".into(),
            instance: None,
            interfaces: Vec::new(),
            exclude_interfaces: Vec::new(),
            txt: BTreeMap::new(),
        }
    }
}

impl Mdns {
    /// The service type as a DNS name under `local.`, such as
    /// `_discoveryd._udp.local.` (the key may end in `.local` or not).
    pub(crate) fn domain(&self) -> String {
        format!("{}.local.", service_type_stem(&self.service_type))
    }

    /// The largest whole TXT record advised (RFC 6763 section 6.2: above
    /// 1300 bytes is NOT RECOMMENDED; larger ones are lost on the wire).
    pub(crate) const MAX_TXT_RECORD: usize = 1300;

    /// The size of the TXT record advertised: a length byte and
    /// `key=value` for each entry, with the `port` (5 digits at most) and,
    /// given, the `message` entries discoveryd adds.
    pub(crate) fn txt_record_size(&self, message: Option<&str>) -> usize {
        txt_size(
            self.txt
                .iter()
                .map(|(k, v)| (k.as_str(), v.len()))
                .chain([("port", "65535".len())])
                .chain(message.map(|m| ("message", m.len()))),
        )
    }

    /// What is wrong, as (dotted key, reason with the fix), whether or
    /// not it is enabled: a file that turns it on later must not fail then.
    pub(crate) fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if let Err(reason) = check_service_type(&self.service_type) {
            out.push(("mdns.service_type".to_owned(), reason));
        }
        if let Some(instance) = &self.instance {
            if let Err(reason) = check_instance(instance) {
                out.push(("mdns.instance".to_owned(), reason));
            }
        }
        for (list, names) in [
            ("interfaces", &self.interfaces),
            ("exclude_interfaces", &self.exclude_interfaces),
        ] {
            for name in names {
                if let Err(reason) = check_interface(name) {
                    out.push((format!("mdns.{list}"), reason));
                }
            }
        }
        for name in self
            .interfaces
            .iter()
            .filter(|n| self.exclude_interfaces.contains(n))
        {
            out.push((
                "mdns.exclude_interfaces".to_owned(),
                format!("`{name}` is in both mdns.interfaces and mdns.exclude_interfaces; keep it in one"),
            ));
        }
        out.extend(
            txt_problems(&self.txt, &RESERVED_TXT, "the discovery")
                .into_iter()
                .map(|(key, reason)| (format!("mdns.txt.{key}"), reason)),
        );
        out
    }
}

/// What is wrong with TXT entries, as (the key escaped, reason with the
/// fix): each entry on its own (printable ASCII key without `=`, none of
/// the `reserved` keys discoveryd sets, whose values are `what`, and
/// `key=value` within 255 bytes, RFC 6763 section 6), and keys that differ
/// only in case (section 6.4: one of `Role` and `role` would be dropped on
/// the wire).
pub(crate) fn txt_problems(
    txt: &BTreeMap<String, String>,
    reserved: &[&str],
    what: &str,
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (key, value) in txt {
        if let Err(reason) = check_txt(key, value, reserved, what) {
            out.push((key.escape_debug().to_string(), reason));
        }
    }
    let keys: Vec<&String> = txt.keys().collect();
    for (i, key) in keys.iter().enumerate() {
        if let Some(same) = keys[..i].iter().find(|k| k.eq_ignore_ascii_case(key)) {
            out.push((
                key.escape_debug().to_string(),
                format!(
                    "`{}` and `{}` are the same TXT key (keys are case-insensitive, RFC 6763 section 6.4), and one would be dropped; keep one",
                    same.escape_debug(),
                    key.escape_debug()
                ),
            ));
        }
    }
    out
}

/// The size of a TXT record on the wire: a length byte and `key=value`
/// for each entry.
pub(crate) fn txt_size<'a>(entries: impl IntoIterator<Item = (&'a str, usize)>) -> usize {
    entries
        .into_iter()
        .map(|(key, value)| 1 + key.len() + 1 + value)
        .sum()
}

/// `_name._udp` from `_name._udp`, `_name._udp.local` or `_name._udp.local.`
/// (the domain in any case).
pub(crate) fn service_type_stem(service_type: &str) -> &str {
    let t = service_type.strip_suffix('.').unwrap_or(service_type);
    match t.len().checked_sub(".local".len()) {
        Some(i) if t.is_char_boundary(i) && t[i..].eq_ignore_ascii_case(".local") => &t[..i],
        _ => t,
    }
}

/// A DNS-SD service type: `_<name>._udp` or `_<name>._tcp`, where the
/// name follows RFC 6335 (1 to 15 letters, digits and inner hyphens, with
/// a letter).
pub(crate) fn check_service_type(raw: &str) -> Result<(), String> {
    let stem = service_type_stem(raw);
    let service_type = raw.escape_debug();
    let fix = "use one such as \"_discoveryd._udp\" or \"_http._tcp\"";
    let Some((name, proto)) = stem.split_once('.') else {
        return Err(format!(
            "`{service_type}` is not a DNS-SD service type; {fix}"
        ));
    };
    if !matches!(proto, "_udp" | "_tcp") {
        return Err(format!(
            "`{service_type}` must end in `._udp` or `._tcp`; {fix}"
        ));
    }
    let Some(name) = name.strip_prefix('_') else {
        return Err(format!(
            "`{service_type}` must start with an underscore; {fix}"
        ));
    };
    let valid = (1..=15).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && name.bytes().any(|b| b.is_ascii_alphabetic())
        && !name.starts_with('-')
        && !name.ends_with('-')
        && !name.contains("--");
    if !valid {
        return Err(format!(
            "`{}` in `{service_type}` is not a service name: 1 to 15 letters, digits and single inner hyphens, with at least one letter (RFC 6335); {fix}",
            name.escape_debug()
        ));
    }
    Ok(())
}

/// An instance name: 1 to 57 bytes of UTF-8, no control characters.
/// A DNS label holds 63 bytes, and mdns-sd renames an instance after a
/// conflict to `<name> (2)` ... `<name> (999)`, which must still fit.
pub(crate) fn check_instance(instance: &str) -> Result<(), String> {
    if instance.is_empty() || instance.len() > MAX_INSTANCE {
        return Err(format!(
            "the instance name is {} bytes; use 1 to {MAX_INSTANCE} bytes (a DNS label holds 63, and after a name conflict the instance is renamed `<name> (2)`, up to 6 bytes longer), or remove the key to use the host name",
            instance.len()
        ));
    }
    if instance.chars().any(char::is_control) {
        return Err("the instance name has a control character; remove it".to_owned());
    }
    Ok(())
}

/// The default instance name and mDNS host (`label.local.`) from the raw
/// host name (none: unknown). The instance is the host name without its
/// control characters, cut to [`MAX_INSTANCE`] bytes on a character
/// boundary; the host is its first non-empty label, with what DNS does not
/// allow replaced by `-`, cut to [`MAX_HOST_LABEL`] bytes. Either falls
/// back to `discoveryd` when nothing is left.
pub(crate) fn default_names(hostname: Option<&str>) -> (String, String) {
    let full = hostname.unwrap_or_default();
    let label: String = full
        .split('.')
        .find(|l| !l.is_empty())
        .unwrap_or_default()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(MAX_HOST_LABEL)
        .collect();
    let mut instance = String::new();
    for c in full.chars().filter(|c| !c.is_control()) {
        if instance.len() + c.len_utf8() > MAX_INSTANCE {
            break;
        }
        instance.push(c);
    }
    let or_default = |s: String| {
        if s.trim().is_empty() {
            "discoveryd".to_owned()
        } else {
            s
        }
    };
    (
        or_default(instance),
        format!("{}.local.", or_default(label)),
    )
}

/// An interface name as Linux allows it (IFNAMSIZ).
fn check_interface(name: &str) -> Result<(), String> {
    let ok = (1..=15).contains(&name.len())
        && !name.contains(['/', ':'])
        && !name.chars().any(|c| c.is_whitespace() || c.is_control())
        && name != "."
        && name != "..";
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{}` is not an interface name (1 to 15 characters, no `/`, `:`, spaces or control characters); see `ip link`",
            name.escape_debug()
        ))
    }
}

/// A TXT entry: a printable ASCII key without `=`, none of the `reserved`
/// keys discoveryd sets (to `what` {key}), and `key=value` within 255 bytes
/// (RFC 6763 section 6).
fn check_txt(key: &str, value: &str, reserved: &[&str], what: &str) -> Result<(), String> {
    let shown = key.escape_debug();
    if key.is_empty() || !key.bytes().all(|b| (0x20..=0x7e).contains(&b) && b != b'=') {
        return Err(format!(
            "`{shown}` is not a TXT key: use printable ASCII without `=`"
        ));
    }
    if reserved.iter().any(|r| r.eq_ignore_ascii_case(key)) {
        return Err(format!(
            "`{shown}` is set by discoveryd ({what} {shown}); use another key"
        ));
    }
    let len = key.len() + 1 + value.len();
    if len > MAX_TXT_ENTRY {
        let start: String = value.chars().take(20).collect();
        return Err(format!(
            "`{shown}={}...` is {len} bytes; a TXT entry holds at most {MAX_TXT_ENTRY}",
            start.escape_debug()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_types_follow_rfc_6335() {
        for ok in [
            "_discoveryd._udp",
            "_http._tcp",
            "_ipp._tcp.local",
            "_a-b._udp.local.",
        ] {
            assert_eq!(check_service_type(ok), Ok(()), "{ok}");
        }
        for bad in [
            "discoveryd._udp",
            "_discoveryd",
            "_discoveryd._sctp",
            "_._udp",
            "_1234._udp",
            "_-x._udp",
            "_a--b._udp",
            "_seventeen-letter._udp",
            "_a b._udp",
        ] {
            assert!(check_service_type(bad).is_err(), "{bad}");
        }
        let mdns = Mdns {
            service_type: "_ipp._tcp.local.".into(),
            ..Mdns::default()
        };
        assert_eq!(mdns.domain(), "_ipp._tcp.local.");
    }

    #[test]
    fn each_problem_names_its_key() {
        let mdns = Mdns {
            instance: Some(String::new()),
            interfaces: vec!["eth0".into(), "a/b".into()],
            exclude_interfaces: vec!["eth0".into()],
            txt: [
                ("port".to_owned(), "1".to_owned()),
                ("a=b".to_owned(), "1".to_owned()),
                ("long".to_owned(), "x".repeat(251)),
                ("ok".to_owned(), "x".repeat(252)),
            ]
            .into(),
            ..Mdns::default()
        };
        let keys: Vec<String> = mdns.problems().into_iter().map(|(k, _)| k).collect();
        assert_eq!(
            keys,
            [
                "mdns.instance",
                "mdns.interfaces",
                "mdns.exclude_interfaces",
                "mdns.txt.a=b",
                "mdns.txt.long",
                "mdns.txt.port",
            ]
        );
        assert!(Mdns::default().problems().is_empty());
    }

    #[test]
    fn an_instance_leaves_room_for_the_conflict_suffix() {
        let at_most = "é".repeat(28) + "x";
        assert_eq!(at_most.len(), 57);
        assert_eq!(check_instance(&at_most), Ok(()));
        let e = check_instance(&"x".repeat(58)).unwrap_err();
        assert!(e.contains("58 bytes; use 1 to 57 bytes"), "{e}");
        assert!(e.contains("renamed `<name> (2)`"), "{e}");
        assert!(check_instance(&"x".repeat(63)).is_err());
    }

    #[test]
    fn default_names_skip_empty_labels_and_control_characters_and_fit() {
        for (raw, instance, host) in [
            (Some("lab.example.com"), "lab.example.com", "lab.local."),
            (Some(".lab"), ".lab", "lab.local."),
            (Some("..a.b"), "..a.b", "a.local."),
            (Some("."), ".", "discoveryd.local."),
            (Some(""), "discoveryd", "discoveryd.local."),
            (None, "discoveryd", "discoveryd.local."),
            (Some("a\u{1b}[31mb\r\nc"), "a[31mbc", "a--31mb--c.local."),
            (Some("\u{1b}\u{7}"), "discoveryd", "--.local."),
        ] {
            assert_eq!(
                default_names(raw),
                (instance.to_owned(), host.to_owned()),
                "{raw:?}"
            );
        }
        // 63 characters of two bytes each: cut on a character boundary.
        let long = "é".repeat(63);
        let (instance, host) = default_names(Some(&long));
        assert_eq!(instance, "é".repeat(28));
        assert_eq!(check_instance(&instance), Ok(()));
        assert_eq!(host, format!("{}.local.", "-".repeat(59)));
        let (instance, host) = default_names(Some(&"h".repeat(80)));
        assert_eq!(instance.len(), MAX_INSTANCE);
        assert_eq!(host.len(), MAX_HOST_LABEL + ".local.".len());
        for raw in ["\u{1b}", "a\u{0}b", " \t", ".\n."] {
            let (instance, _) = default_names(Some(raw));
            assert_eq!(check_instance(&instance), Ok(()), "{raw:?}");
        }
    }

    #[test]
    fn the_txt_record_size_counts_every_entry_with_its_length_byte() {
        let mut mdns = Mdns::default();
        // port=65535: 1 + 10; message=DISCOVER_SERVER: 1 + 23.
        assert_eq!(mdns.txt_record_size(None), 11);
        assert_eq!(mdns.txt_record_size(Some("DISCOVER_SERVER")), 35);
        mdns.txt.insert("role".into(), "printer".into());
        assert_eq!(mdns.txt_record_size(Some("DISCOVER_SERVER")), 35 + 13);
        // Forty entries of 250 bytes each pass one by one, not together.
        for i in 0..40 {
            mdns.txt.insert(format!("k{i:02}"), "v".repeat(246));
        }
        assert!(mdns.problems().is_empty(), "{:?}", mdns.problems());
        assert!(mdns.txt_record_size(None) > Mdns::MAX_TXT_RECORD);
    }

    #[test]
    fn txt_keys_are_shown_escaped_and_case_insensitive_duplicates_refused() {
        let mdns = Mdns {
            txt: [
                ("\u{1b}[31m".to_owned(), "x".to_owned()),
                ("Role".to_owned(), "a".to_owned()),
                ("role".to_owned(), "b".to_owned()),
                (
                    "long".to_owned(),
                    format!("\u{1b}]0;t\u{7}{}", "x".repeat(250)),
                ),
            ]
            .into(),
            ..Mdns::default()
        };
        let problems = mdns.problems();
        for (key, reason) in &problems {
            assert!(
                !key.contains('\u{1b}') && !reason.contains('\u{1b}'),
                "{key}: {reason}"
            );
            assert!(!reason.contains('\u{7}'), "{reason}");
        }
        let keys: Vec<&str> = problems.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            ["mdns.txt.\\u{1b}[31m", "mdns.txt.long", "mdns.txt.role"],
            "{problems:?}"
        );
        assert!(
            problems[0].1.starts_with("`\\u{1b}[31m` is not a TXT key"),
            "{problems:?}"
        );
        assert!(
            problems[1].1.contains("`long=\\u{1b}]0;t\\u{7}"),
            "{problems:?}"
        );
        assert!(
            problems[2]
                .1
                .starts_with("`Role` and `role` are the same TXT key"),
            "{problems:?}"
        );
    }
}
