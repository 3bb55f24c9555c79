//! `discoveryd check`, and the shipped config files.

use std::path::Path;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt as _;

use crate::util::{output, output_with_env, ConfigDir};

fn config_files() -> Vec<std::path::PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(!files.is_empty());
    files
}

#[test]
fn every_shipped_config_passes_check() {
    for file in config_files() {
        let (code, out, err) = output(&["check", "--config", file.to_str().unwrap()]);
        assert_eq!(code, 0, "{}: {err}", file.display());
        // The effective config is TOML that passes check again.
        let again = ConfigDir::new(&out);
        let (code, out2, err) = output(&["check", "--config", again.path().to_str().unwrap()]);
        assert_eq!(
            (code, out2.as_str()),
            (0, out.as_str()),
            "{}: {err}",
            file.display()
        );
    }
}

#[test]
fn an_unknown_key_in_any_table_of_any_shipped_config_is_rejected_by_name() {
    for file in config_files() {
        let text = std::fs::read_to_string(&file).unwrap();
        let doc: toml::Table = text.parse().unwrap();
        for (table, key) in tables(&doc, "")
            .into_iter()
            .filter(|(_, key)| !is_free_form(key))
        {
            let mut mutated = doc.clone();
            insert(&mut mutated, &table, "bogus_key");
            let dir = ConfigDir::new(&toml::to_string(&mutated).unwrap());
            let (code, _, err) = output(&["check", "--config", dir.path().to_str().unwrap()]);
            assert_eq!(
                code,
                2,
                "{} [{key}]: accepted an unknown key",
                file.display()
            );
            assert!(
                err.contains("bogus_key"),
                "{} [{key}]: {err}",
                file.display()
            );
        }
    }
}

/// Tables whose keys are the user's own, by design.
fn is_free_form(label: &str) -> bool {
    label.ends_with(".metadata")
}

/// Every table path in `doc` (array entries by index), with a label.
fn tables(doc: &toml::Table, label: &str) -> Vec<(Vec<Step>, String)> {
    let mut out = vec![(
        Vec::new(),
        if label.is_empty() {
            "top level".into()
        } else {
            label.to_owned()
        },
    )];
    for (k, v) in doc {
        let here = if label.is_empty() {
            k.clone()
        } else {
            format!("{label}.{k}")
        };
        match v {
            toml::Value::Table(t) => {
                for (mut path, l) in tables(t, &here) {
                    path.insert(0, Step::Key(k.clone()));
                    out.push((path, l));
                }
            }
            toml::Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    if let toml::Value::Table(t) = item {
                        for (mut path, l) in tables(t, &format!("{here}[{i}]")) {
                            path.insert(0, Step::Index(i));
                            path.insert(0, Step::Key(k.clone()));
                            out.push((path, l));
                        }
                    }
                }
            }
            _ => {}
        }
    }
    out
}

#[derive(Clone, Debug)]
enum Step {
    Key(String),
    Index(usize),
}

fn insert(doc: &mut toml::Table, path: &[Step], key: &str) {
    let mut value = doc;
    let mut steps = path.iter().peekable();
    while let Some(Step::Key(k)) = steps.next() {
        let next = value.get_mut(k).unwrap();
        value = match (next, steps.peek()) {
            (toml::Value::Array(items), Some(Step::Index(i))) => {
                let i = *i;
                steps.next();
                items[i].as_table_mut().unwrap()
            }
            (toml::Value::Table(t), _) => t,
            _ => unreachable!("paths only lead through tables"),
        };
    }
    value.insert(key.to_owned(), toml::Value::Integer(1));
}

#[test]
fn check_prints_the_effective_config_or_names_the_file_and_key() {
    let dir = ConfigDir::new("port = 7777\nservice_port = 8000\n");
    let (code, out, _) = output(&["check", "--config", dir.path().to_str().unwrap()]);
    assert_eq!(code, 0);
    let effective: toml::Table = out.parse().expect("TOML on stdout");
    assert_eq!(effective["port"].as_integer(), Some(7777));
    assert_eq!(effective["service_port"].as_integer(), Some(8000));
    assert_eq!(effective["message"].as_str(), Some("DISCOVER_SERVER"));

    for (body, key) in [
        ("port = 70000", "port"),
        ("port = 0", "port"),
        ("message = \"\"", "message"),
        ("buffer_size = 2", "buffer_size"),
        (
            "[supervision]\nrestart_on_failure = 3",
            "supervision.restart_on_failure",
        ),
        // Each of these passed `check` once, then failed at run.
        ("bind = [\"127.0.0.1\", \"127.0.0.1\"]", "bind"),
        ("bind = [\"127.0.0.1\", \"0.0.0.0\"]", "bind"),
        ("bind = \"::ffff:127.0.0.1\"", "bind"),
        ("bind = \"fe80::1\"", "bind"),
        ("pidfile = \"\"", "pidfile"),
        ("log_file = \"\"", "log_file"),
        (
            "[security]\nmax_amplification = nan",
            "security.max_amplification",
        ),
        ("response_prefix = \"DISCOVER_\"", "response_prefix"),
    ] {
        let dir = ConfigDir::new(body);
        let (code, out, err) = output(&["check", "--config", dir.path().to_str().unwrap()]);
        assert_eq!(code, 2, "{body}: {err}");
        assert!(out.is_empty());
        let path = dir.path();
        assert!(
            err.contains(&format!("{}: key `{key}`", path.display())),
            "{body}: {err}"
        );
    }
    let dir = ConfigDir::new("port = \n");
    let (code, _, err) = output(&["check", "--config", dir.path().to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(
        err.contains(&format!("{}:1:", dir.path().display())) && err.contains("invalid TOML"),
        "{err}"
    );
}

#[test]
fn environment_variables_for_config_keys_are_checked_too() {
    let cases: [(&str, &OsStr, &str); 7] = [
        (
            "DISCOVERYD_SECURITY__ALLOW",
            OsStr::new("[\"10.0.0.0/33\"]"),
            "environment variable DISCOVERYD_SECURITY__ALLOW: key `security.allow`: item 0:",
        ),
        // Numbers arrive as text, exponents included.
        ("DISCOVERYD_SECURITY__RATE_LIMIT__GLOBAL", OsStr::new("1e5"), ""),
        (
            "DISCOVERYD_MESSAGE",
            OsStr::from_bytes(b"DISCOVER_\xff"),
            "environment variable DISCOVERYD_MESSAGE: key `message`: is not valid UTF-8",
        ),
        (
            "DISCOVERYD_RESPONDERS",
            OsStr::new("5"),
            "environment variable DISCOVERYD_RESPONDERS: key `responders`: responders cannot be set from the environment",
        ),
        (
            "DISCOVERYD_SUPERVISION__RETRY_AFTER_CLEANUP__TRIES",
            OsStr::new("5"),
            "key `supervision.retry_after_cleanup.tries`: names no key the environment can set",
        ),
        (
            "DISCOVERYD_PIDFILE",
            OsStr::new(""),
            "environment variable DISCOVERYD_PIDFILE: key `pidfile`: must not be empty",
        ),
        (
            "DISCOVERYD_MAX_AMPLIFICATION",
            OsStr::new("1"),
            "",
        ),
    ];
    for (name, value, expected) in cases {
        let (code, _, err) = output_with_env(&["check"], &[(name, value)]);
        if expected.is_empty() {
            // Valid, or not a key of ours (MAX_AMPLIFICATION lives under
            // [security]): someone else's variable, ignored.
            assert_eq!(code, 0, "{name}: {err}");
        } else {
            assert_eq!(code, 2, "{name}: {err}");
            assert!(err.contains(expected), "{name}: {err}");
        }
    }
}

#[test]
fn mdns_names_and_txt_that_would_break_on_the_wire_are_refused() {
    let big: String = (0..6)
        .map(|i| format!("k{i} = \"{}\"\n", "v".repeat(240)))
        .collect();
    for (body, key, says) in [
        (
            format!("[mdns]\ninstance = \"{}\"", "x".repeat(58)),
            "mdns.instance",
            "58 bytes; use 1 to 57 bytes",
        ),
        (
            format!("[mdns]\nenabled = true\n[mdns.txt]\n{big}"),
            "mdns.txt",
            // 6 entries of 1 + 244 bytes, port=65535 and message=DISCOVER_SERVER.
            "the TXT record would be 1499 bytes",
        ),
        (
            "[mdns.txt]\nRole = \"a\"\nrole = \"b\"".to_owned(),
            "mdns.txt.role",
            "`Role` and `role` are the same TXT key",
        ),
        (
            "[mdns.txt]\n\"\\u001b[31m\" = \"x\"".to_owned(),
            "mdns.txt.\\u{1b}[31m",
            "`\\u{1b}[31m` is not a TXT key",
        ),
        ("timeout = \"2h\"".to_owned(), "timeout", "at most 1h"),
    ] {
        let dir = ConfigDir::new(&body);
        let (code, out, err) = output(&["check", "--config", dir.path().to_str().unwrap()]);
        assert_eq!(code, 2, "{body}: {err}");
        assert!(out.is_empty());
        assert!(err.contains(&format!("key `{key}`")), "{body}: {err}");
        assert!(err.contains(says), "{body}: {err}");
        assert!(!err.contains('\u{1b}'), "{body}: {err}");
    }
    let dir = ConfigDir::new(&format!("[mdns]\ninstance = \"{}\"", "x".repeat(57)));
    let (code, _, err) = output(&["check", "--config", dir.path().to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
}
