//! The configuration's tests: layering, errors that name their source,
//! validation, and diffs.

// figment's `Jail` closures return its large error type; not ours to shrink.
#![allow(clippy::result_large_err)]

mod layering {
    use super::super::*;
    use figment::Jail;
    use std::net::IpAddr;

    fn load(jail: &mut Jail, toml: &str) -> Result<Config, ConfigErrors> {
        jail.create_file("d.toml", toml).unwrap();
        ConfigSource::file("d.toml").load()
    }

    fn one_error(r: Result<Config, ConfigErrors>) -> String {
        let errors = r.unwrap_err().0;
        assert_eq!(errors.len(), 1, "{errors:?}");
        errors[0].to_string()
    }

    #[test]
    fn defaults_match_the_python_original() {
        let c = ConfigSource::default().load().unwrap();
        assert_eq!(c.port, 9999);
        assert_eq!(c.message, "DISCOVER_SERVER");
        assert_eq!(c.response_prefix, "SERVER_IP:");
        assert_eq!(c.buffer_size, 1024);
        assert_eq!(c.timeout.get(), std::time::Duration::from_millis(500));
        assert!(c.logging);
        assert_eq!(c.responders, vec![ResponderConfig::classic()]);
    }

    #[test]
    fn layers_apply_in_order_defaults_file_env_flags() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "d.toml",
                "port = 1000\nmessage = \"FROM_THE_FILE\"\nbuffer_size = 512\n",
            )?;
            jail.set_env("DISCOVERYD_MESSAGE", "FROM_THE_ENV");
            jail.set_env("DISCOVERYD_SUPERVISION__RETRY_AFTER_CLEANUP__ATTEMPTS", "7");
            jail.set_env("DISCOVERYD_UNRELATED", "ignored, not an error");
            let mut source = ConfigSource::file("d.toml");
            let c = source.load().unwrap();
            assert_eq!(
                (c.port, c.message.as_str(), c.buffer_size),
                (1000, "FROM_THE_ENV", 512)
            );
            assert_eq!(c.supervision.retry_after_cleanup.attempts, 7);
            source.overrides.message = Some("FROM_THE_FLAG".into());
            source.overrides.port = Some(0);
            let c = source.load().unwrap();
            assert_eq!((c.port, c.message.as_str()), (0, "FROM_THE_FLAG"));
            Ok(())
        });
    }

    #[test]
    fn errors_name_the_file_and_the_key() {
        Jail::expect_with(|jail| {
            let e = one_error(load(jail, "port = 70000\n"));
            assert!(
                e.starts_with("d.toml: key `port`:") && e.contains("1 to 65535"),
                "{e}"
            );
            let e = one_error(load(jail, "port = 0\n"));
            assert!(e.starts_with("d.toml: key `port`:"), "{e}");
            let e = one_error(load(jail, "message = \"\"\n"));
            assert!(
                e.starts_with("d.toml: key `message`: must not be empty"),
                "{e}"
            );
            let e = one_error(load(jail, "colour = 1\n"));
            assert!(e.starts_with("d.toml: key `colour`: unknown key"), "{e}");
            let e = one_error(load(jail, "[supervision.retry_after_cleanup]\ntries = 1\n"));
            assert!(
                e.contains("key `supervision.retry_after_cleanup.tries`"),
                "{e}"
            );
            let e = one_error(load(jail, "duration = \"0s\"\n"));
            assert!(e.contains("key `duration`") && e.contains("zero"), "{e}");
            let e = one_error(load(jail, "bind = \"nowhere\"\n"));
            assert!(
                e.contains("key `bind`") && e.contains("not an IP address"),
                "{e}"
            );
            let e = one_error(load(jail, "port = 99\nmessage = \n"));
            assert!(e.starts_with("d.toml:2:11: invalid TOML"), "{e}");
            Ok(())
        });
    }

    #[test]
    fn reply_jitter_is_off_by_default_bounded_and_zero_turns_it_off() {
        Jail::expect_with(|jail| {
            assert_eq!(load(jail, "").unwrap().reply_jitter, None);
            let c = load(jail, "reply_jitter = \"200ms\"\n").unwrap();
            assert_eq!(
                c.reply_jitter.map(HumanDuration::get),
                Some(std::time::Duration::from_millis(200))
            );
            assert_eq!(
                load(jail, "reply_jitter = \"1s\"\n").unwrap().reply_jitter,
                c.reply_jitter.map(|_| HumanDuration::from_millis(1000))
            );
            assert_eq!(
                load(jail, "reply_jitter = \"0ms\"\n").unwrap().reply_jitter,
                None
            );
            assert_eq!(load(jail, "reply_jitter = 0\n").unwrap().reply_jitter, None);
            for (bad, why) in [
                ("\"1001ms\"", "too long"),
                ("2", "too long"),
                ("\"soon\"", "not a duration"),
                ("\"-5ms\"", "negative"),
            ] {
                let e = one_error(load(jail, &format!("reply_jitter = {bad}\n")));
                assert!(
                    e.starts_with("d.toml: key `reply_jitter`:")
                        && e.contains(why)
                        && e.contains("1s")
                        && !e.contains('\n'),
                    "{bad}: {e}"
                );
            }
            jail.set_env("DISCOVERYD_REPLY_JITTER", "5s");
            let e = one_error(load(jail, ""));
            assert!(
                e.contains("DISCOVERYD_REPLY_JITTER") && e.contains("too long"),
                "{e}"
            );
            jail.set_env("DISCOVERYD_REPLY_JITTER", "50ms");
            assert_eq!(
                load(jail, "").unwrap().reply_jitter.map(HumanDuration::get),
                Some(std::time::Duration::from_millis(50))
            );
            Ok(())
        });
    }

    #[test]
    fn log_format_and_the_log_level_flag_layer() {
        Jail::expect_with(|jail| {
            assert_eq!(load(jail, "").unwrap().log_format, LogFormat::Text);
            let c = load(jail, "log_format = \"json\"\n").unwrap();
            assert_eq!(c.log_format, LogFormat::Json);
            let e = one_error(load(jail, "log_format = \"xml\"\n"));
            assert_eq!(
                e,
                "d.toml: key `log_format`: `xml` is not a choice; use one of: text, json"
            );
            // --log-level outranks the file and the environment, and turns
            // logging on.
            jail.create_file("d.toml", "logging = false\nlog_level = \"error\"\n")?;
            jail.set_env("DISCOVERYD_LOG_LEVEL", "warn");
            let mut source = ConfigSource::file("d.toml");
            let c = source.load().unwrap();
            assert_eq!((c.logging, c.log_level), (false, LogLevel::Warn));
            source.overrides = Overrides::default().with_log_level(Some(LogLevel::Debug));
            let c = source.load().unwrap();
            assert_eq!((c.logging, c.log_level), (true, LogLevel::Debug));
            source.overrides = Overrides::default().with_log_level(None);
            assert!(!source.load().unwrap().logging);
            Ok(())
        });
    }

    #[test]
    fn an_empty_file_is_defaults_at_start_but_rejected_on_reload() {
        Jail::expect_with(|jail| {
            jail.create_file("d.toml", "\n")?;
            let source = ConfigSource::file("d.toml");
            assert_eq!(source.load().unwrap(), Config::default());
            let e = one_error(source.reload());
            assert!(e.starts_with("d.toml: the file is empty"), "{e}");
            jail.create_file("d.toml", "# defaults, on purpose\n")?;
            assert_eq!(source.reload().unwrap(), Config::default());
            Ok(())
        });
    }

    #[test]
    fn env_errors_name_the_variable() {
        Jail::expect_with(|jail| {
            jail.set_env("DISCOVERYD_BUFFER_SIZE", "3");
            let e = one_error(ConfigSource::default().load());
            assert!(
                e.starts_with("environment variable DISCOVERYD_BUFFER_SIZE: key `buffer_size`"),
                "{e}"
            );
            Ok(())
        });
    }

    #[test]
    fn any_message_works_with_the_defaults_over_ipv4_and_ipv6() {
        Jail::expect_with(|jail| {
            for message in ["A", "ABC", "ALPHA"] {
                let toml = format!(
                    "message = \"{message}\"\nservice_port = 65535\nbind = [\"0.0.0.0\", \"::\"]\n"
                );
                assert_eq!(load(jail, &toml).unwrap().message, message);
            }
            jail.set_env("DISCOVERYD_MESSAGE", "ENVMSG");
            assert_eq!(ConfigSource::default().load().unwrap().message, "ENVMSG");
            Ok(())
        });
    }

    #[test]
    fn the_cap_still_bites_answers_that_really_grow() {
        Jail::expect_with(|jail| {
            // 100-byte prefix: 115 + 28 bytes on the wire against 3 x (1 + 28).
            let toml = format!(
                "message = \"A\"\nresponse_prefix = \"{}\"\n",
                "P".repeat(100)
            );
            let e = one_error(load(jail, &toml));
            assert!(
                e.starts_with("d.toml: key `message`: `message` is 1 bytes, too short")
                    && e.contains("at least 20 bytes")
                    && e.contains("28 bytes of IPv4 and UDP headers"),
                "{e}"
            );
            // Over IPv6 the worst case is a 41-byte bracketed address.
            let toml = "message = \"A\"\nservice_port = 1\nbind = \"::\"\n[security]\nmax_amplification = 1.5\n";
            let e = one_error(load(jail, toml));
            assert!(e.contains("IPv6") && e.contains("at least 22 bytes"), "{e}");
            let e = one_error(load(jail, "[security.rate_limit]\nsources = 16777216\n"));
            assert!(
                e.starts_with("d.toml: key `security.rate_limit.sources`: use 16 to 1048576"),
                "{e}"
            );
            let e = one_error(load(jail, "[security]\nmax_amplification = nan\n"));
            assert!(
                e.starts_with("d.toml: key `security.max_amplification`: must be a number of at least 1.0 (not nan or inf)"),
                "{e}"
            );
            Ok(())
        });
    }

    #[test]
    fn a_config_that_would_answer_nothing_is_rejected() {
        Jail::expect_with(|jail| {
            let e = one_error(load(jail, "response_prefix = \"DISCOVER_\"\n"));
            assert!(
                e.starts_with("d.toml: key `response_prefix`: `message` (\"DISCOVER_SERVER\") starts with `response_prefix` (\"DISCOVER_\")"),
                "{e}"
            );
            let e = one_error(load(jail, "message = \"SERVER_IP:please\"\n"));
            assert!(
                e.starts_with(
                    "d.toml: key `message`: `message` (\"SERVER_IP:please\") starts with"
                ),
                "{e}"
            );
            Ok(())
        });
    }

    #[test]
    fn bind_entries_must_be_bindable_and_distinct() {
        Jail::expect_with(|jail| {
            for (bind, expected) in [
                ("[\"127.0.0.1\", \"127.0.0.1\"]", "lists 127.0.0.1 twice"),
                ("[\"127.0.0.1\", \"0.0.0.0\"]", "0.0.0.0 already covers 127.0.0.1"),
                ("[\"::\", \"::1\"]", ":: already covers ::1"),
                ("\"::ffff:127.0.0.1\"", "IPv4-mapped IPv6 address, and IPv6 sockets here are IPv6-only; write 127.0.0.1 instead"),
                ("\"fe80::1\"", "fe80::1 is link-local"),
            ] {
                let e = one_error(load(jail, &format!("bind = {bind}\n")));
                assert!(e.starts_with("d.toml: key `bind`: ") && e.contains(expected), "{bind}: {e}");
            }
            // IPv4 and IPv6 wildcards do not overlap: IPv6 sockets are IPv6-only.
            assert_eq!(
                load(jail, "bind = [\"0.0.0.0\", \"::\"]\n")
                    .unwrap()
                    .bind
                    .len(),
                2
            );
            Ok(())
        });
    }

    #[test]
    fn empty_paths_are_errors_naming_their_source() {
        Jail::expect_with(|jail| {
            let e = one_error(load(jail, "pidfile = \"\"\n"));
            assert!(
                e.starts_with("d.toml: key `pidfile`: must not be empty"),
                "{e}"
            );
            let e = one_error(load(jail, "log_file = \"\"\n"));
            assert!(
                e.starts_with("d.toml: key `log_file`: must not be empty"),
                "{e}"
            );
            jail.set_env("DISCOVERYD_PIDFILE", "");
            let e = one_error(ConfigSource::default().load());
            assert!(
                e.starts_with(
                    "environment variable DISCOVERYD_PIDFILE: key `pidfile`: must not be empty"
                ),
                "{e}"
            );
            let e = ConfigSource::default().pidfile().unwrap_err().to_string();
            assert!(
                e.starts_with(
                    "environment variable DISCOVERYD_PIDFILE: key `pidfile`: must not be empty"
                ),
                "{e}"
            );
            Ok(())
        });
    }

    #[test]
    fn environment_variables_for_our_keys_must_name_one() {
        Jail::expect_with(|jail| {
            jail.set_env("DISCOVERYD_RESPONDERS", "5");
            let e = one_error(ConfigSource::default().load());
            assert!(e.starts_with("environment variable DISCOVERYD_RESPONDERS: key `responders`: responders cannot be set from the environment"), "{e}");
            Ok(())
        });
        Jail::expect_with(|jail| {
            jail.set_env("DISCOVERYD_SECURITY__RATE_LIMIT__FOO", "1");
            let e = one_error(ConfigSource::default().load());
            assert!(
                e.starts_with("environment variable DISCOVERYD_SECURITY__RATE_LIMIT__FOO: key `security.rate_limit.foo`: names no key the environment can set; expected one of: DISCOVERYD_SECURITY__RATE_LIMIT__BURST, DISCOVERYD_SECURITY__RATE_LIMIT__GLOBAL, DISCOVERYD_SECURITY__RATE_LIMIT__PER_SOURCE, DISCOVERYD_SECURITY__RATE_LIMIT__SOURCES"),
                "{e}"
            );
            // A variable sharing only the prefix is someone else's.
            jail.set_env("DISCOVERYD_SECURITY__RATE_LIMIT__FOO", "");
            Ok(())
        });
    }

    #[test]
    fn bind_takes_one_or_many_addresses() {
        Jail::expect_with(|jail| {
            assert_eq!(
                load(jail, "bind = \"127.0.0.1\"").unwrap().bind,
                vec![IpAddr::from([127, 0, 0, 1])]
            );
            let c = load(jail, "bind = [\"127.0.0.1\", \"::1\"]").unwrap();
            assert_eq!(c.bind.len(), 2);
            Ok(())
        });
    }

    #[test]
    fn effective_config_round_trips_through_toml() {
        Jail::expect_with(|jail| {
            let c = load(
                jail,
                "service_port = 8080\nduration = \"2m\"\n[[responders]]\ntype = \"json\"\nname = \"x\"\n",
            )
            .unwrap();
            let again = load(jail, &c.to_toml()).unwrap();
            assert_eq!(c, again);
            Ok(())
        });
    }

    #[test]
    fn diff_lists_changed_keys() {
        let a = Config::default();
        let mut b = a.clone();
        b.message = "X".into();
        b.supervision.retry_after_cleanup.attempts = 9;
        let d = ConfigDiff::between(&a, &b);
        assert_eq!(
            d.keys(),
            ["message", "supervision.retry_after_cleanup.attempts"]
        );
        b.port = 1;
        b.pidfile = Some("elsewhere.pid".into());
        let d = ConfigDiff::between(&a, &b);
        assert!(d.keys().contains(&"port".to_owned()));
        assert_eq!(d.next_start().collect::<Vec<_>>(), ["pidfile"]);
        assert!(ConfigDiff::between(&a, &a).is_empty());
    }
}

mod properties {
    use super::super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn validation_never_panics_and_accepts_only_valid_values(
            port in any::<i64>(),
            buffer_size in -10i64..70_000,
            message in ".{0,30}",
            amplification in -2.0f64..10.0,
        ) {
            let text = format!(
                "port = {port}\nbuffer_size = {buffer_size}\nmessage = {}\n[security]\nmax_amplification = {amplification:?}\n",
                toml::Value::String(message.clone()),
            );
            match ConfigSource::load_text(&text) {
                Ok(c) => {
                    prop_assert!((1..=65535).contains(&port) && c.port as i64 == port);
                    prop_assert!((16..=65_507).contains(&buffer_size) && c.buffer_size as i64 == buffer_size);
                    prop_assert!(!message.is_empty() && message.len() <= c.buffer_size);
                    prop_assert!(amplification >= 1.0);
                }
                Err(errors) => {
                    for e in errors.0 {
                        let line = e.to_string();
                        prop_assert!(line.starts_with("config.toml") && !line.contains('\n'), "{}", line);
                    }
                }
            }
        }
    }

    /// Found by the config fuzzer: a long prefix makes the default message
    /// too short, and the error must name what the file set.
    #[test]
    fn a_cross_key_error_names_the_key_the_file_set() {
        let e = ConfigSource::load_text(&format!("response_prefix = \"{}\"\n", "P".repeat(100)))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("config.toml: key `response_prefix`: `message` is 15 bytes, too short"),
            "{e}"
        );
        let e =
            ConfigSource::load_text("[supervision.restart_on_failure]\nbackoff_max = \"10ms\"\n")
                .unwrap_err()
                .to_string();
        assert!(
            e.starts_with("config.toml: key `supervision.restart_on_failure.backoff_max`"),
            "{e}"
        );
    }

    #[test]
    fn load_text_reads_like_a_file() {
        let c = ConfigSource::load_text("port = 4242\nmessage = \"HELLO_WORLD\"\n").unwrap();
        assert_eq!((c.port, c.message.as_str()), (4242, "HELLO_WORLD"));
        let e = ConfigSource::load_text("port = 0\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("config.toml: key `port`"), "{e}");
    }
}
