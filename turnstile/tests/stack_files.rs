//! docker-compose.yml and scripts/stack.sh describe the same stack; Docker is not needed
//! to check that they agree with each other and with `turnstile serve`: every TURNSTILE_*
//! name they set must be one of its env vars, and the turnstile services must share their
//! topic, group, journal and Redis namespace. No service is started.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use serde_yaml::Value;

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the crate lives in the workspace")
        .to_path_buf()
}

fn serve_help() -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_turnstile"))
        .args(["serve", "--help"])
        .output()
        .expect("run turnstile serve --help");
    assert!(
        out.status.success(),
        "turnstile serve --help failed: {out:?}"
    );
    String::from_utf8(out.stdout).expect("help is UTF-8")
}

/// The env var names `turnstile serve` reads, from its help (`[env: TURNSTILE_X=]`).
fn serve_env_names(help: &str) -> Vec<String> {
    help.split("[env: ")
        .skip(1)
        .filter_map(|rest| rest.split('=').next())
        .map(str::to_owned)
        .collect()
}

/// TURNSTILE_* words in a text (a script), deduplicated.
fn turnstile_names(text: &str) -> Vec<String> {
    let mut names: Vec<String> = text
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("TURNSTILE_") && w.len() > "TURNSTILE_".len())
        .map(str::to_owned)
        .collect();
    names.sort();
    names.dedup();
    names
}

fn compose() -> Value {
    let path = repo_root().join("docker-compose.yml");
    let text = std::fs::read_to_string(&path).expect("read docker-compose.yml");
    let mut value: Value = serde_yaml::from_str(&text).expect("docker-compose.yml is YAML");
    // Resolve `<<: *anchor` merge keys as docker compose does.
    value.apply_merge().expect("merge keys resolve");
    value
}

fn environment(service: &Value) -> BTreeMap<String, String> {
    let scalar = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => panic!("environment value is not a scalar: {other:?}"),
    };
    match &service["environment"] {
        Value::Mapping(map) => map.iter().map(|(k, v)| (scalar(k), scalar(v))).collect(),
        Value::Sequence(items) => items
            .iter()
            .map(|item| {
                let item = scalar(item);
                let (k, v) = item.split_once('=').unwrap_or((&item, ""));
                (k.to_owned(), v.to_owned())
            })
            .collect(),
        Value::Null => BTreeMap::new(),
        other => panic!("environment is neither a map nor a list: {other:?}"),
    }
}

#[test]
fn compose_file_matches_the_cli() {
    let help = serve_help();
    let known = serve_env_names(&help);
    assert!(
        known.iter().any(|n| n == "TURNSTILE_KAFKA_BROKERS"),
        "the help lists no env vars? {known:?}"
    );
    let compose = compose();
    let services = compose["services"]
        .as_mapping()
        .expect("docker-compose.yml has services");
    let names: Vec<&str> = services.keys().filter_map(Value::as_str).collect();
    for required in ["postgres", "redis", "kafka"] {
        assert!(
            names.contains(&required),
            "no service {required}: {names:?}"
        );
        assert!(
            services[required]["healthcheck"].is_mapping(),
            "{required} has no healthcheck"
        );
    }
    let turnstiles: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| n.starts_with("turnstile"))
        .collect();
    assert!(
        turnstiles.len() >= 2,
        "fewer than two turnstile services: {names:?}"
    );

    let mut shared: Option<Vec<(String, String)>> = None;
    for name in &turnstiles {
        let service = &services[*name];
        assert!(
            !service["build"].is_null(),
            "{name} is not built from the Dockerfile"
        );
        for dependency in ["postgres", "redis", "kafka"] {
            assert_eq!(
                service["depends_on"][dependency]["condition"].as_str(),
                Some("service_healthy"),
                "{name} does not wait for a healthy {dependency}"
            );
        }
        let env = environment(service);
        // AWS_* are the AWS SDK's own settings (endpoint, region, credentials) for SES.
        for key in env.keys().filter(|k| !k.starts_with("AWS_")) {
            assert!(
                key.starts_with("TURNSTILE_"),
                "{name} sets {key}: only TURNSTILE_* (and the AWS SDK's AWS_*) configure turnstile"
            );
            assert!(
                known.contains(key),
                "{name} sets {key}, which `turnstile serve` does not read; it reads {known:?}"
            );
        }
        let must_share: Vec<(String, String)> = [
            "TURNSTILE_KAFKA_BROKERS",
            "TURNSTILE_KAFKA_TOPIC",
            "TURNSTILE_KAFKA_GROUP",
            "TURNSTILE_PARTITIONS",
            "TURNSTILE_JOURNAL",
            "TURNSTILE_JOURNAL_SCHEMA",
            "TURNSTILE_EDGE_STATE",
            "TURNSTILE_REDIS_NAMESPACE",
            "TURNSTILE_SES_FROM",
            "AWS_ENDPOINT_URL",
        ]
        .iter()
        .map(|k| {
            let v = env
                .get(*k)
                .unwrap_or_else(|| panic!("{name} does not set {k}"));
            ((*k).to_owned(), v.clone())
        })
        .collect();
        match &shared {
            None => shared = Some(must_share),
            Some(first) => assert_eq!(
                first, &must_share,
                "{name} does not share the topic, group, journal and Redis namespace of {}",
                turnstiles[0]
            ),
        }
    }
    // The journal is the compose file's PostgreSQL, the edge state its Redis, the log its Kafka.
    let shared: BTreeMap<String, String> =
        shared.expect("turnstile services").into_iter().collect();
    assert!(shared["TURNSTILE_JOURNAL"].starts_with("postgres://"));
    assert!(shared["TURNSTILE_JOURNAL"].contains("@postgres:"));
    assert!(shared["TURNSTILE_EDGE_STATE"].starts_with("redis://redis:"));
    assert!(shared["TURNSTILE_KAFKA_BROKERS"].starts_with("kafka:"));
    // Notifications go to SES, which is the compose file's moto, healthy before turnstile,
    // from exactly one of the processes sharing the journal.
    let notifiers: Vec<String> = turnstiles
        .iter()
        .map(|name| environment(&services[*name])["TURNSTILE_NOTIFIER"].clone())
        .collect();
    assert_eq!(
        notifiers.iter().filter(|n| *n == "ses").count(),
        1,
        "exactly one notifier per journal: {notifiers:?}"
    );
    assert!(
        notifiers.iter().all(|n| n == "ses" || n == "off"),
        "{notifiers:?}"
    );
    assert!(shared["AWS_ENDPOINT_URL"].starts_with("http://moto:"));
    assert!(
        services["moto"]["healthcheck"].is_mapping(),
        "moto has no healthcheck"
    );
    for name in &turnstiles {
        assert_eq!(
            services[*name]["depends_on"]["moto"]["condition"].as_str(),
            Some("service_healthy"),
            "{name} does not wait for a healthy moto"
        );
    }
}

#[test]
fn stack_script_matches_the_cli_and_the_compose_file() {
    let root = repo_root();
    let script = root.join("scripts").join("stack.sh");
    let syntax = Command::new("bash")
        .arg("-n")
        .arg(&script)
        .output()
        .expect("run bash -n");
    assert!(
        syntax.status.success(),
        "scripts/stack.sh has a syntax error: {}",
        String::from_utf8_lossy(&syntax.stderr)
    );

    let known = serve_env_names(&serve_help());
    let text = std::fs::read_to_string(&script).expect("read scripts/stack.sh");
    // TURNSTILE_TANSU only tells the script (and the tests) where tansu is.
    let used: Vec<String> = turnstile_names(&text)
        .into_iter()
        .filter(|n| n != "TURNSTILE_TANSU")
        .collect();
    for name in &used {
        assert!(
            known.contains(name),
            "scripts/stack.sh sets {name}, which `turnstile serve` does not read; it reads {known:?}"
        );
    }
    // The script configures turnstile through env vars only, so no flag slips past the above.
    for line in text
        .lines()
        .filter(|l| l.contains("$BIN") && l.contains(" serve"))
    {
        assert!(
            !line.contains(" --"),
            "scripts/stack.sh passes a flag to turnstile serve; use its TURNSTILE_* env var: {line}"
        );
    }

    // The compose services set the same variables (where they differ only by address).
    let compose = compose();
    let compose_env = environment(&compose["services"]["turnstile-1"]);
    for name in &used {
        assert!(
            compose_env.contains_key(name),
            "scripts/stack.sh sets {name} but docker-compose.yml's turnstile-1 does not"
        );
    }
    // scripts/stack.sh starts no moto: its processes keep the default mailbox notifier,
    // so the compose file's notifier settings (and the AWS SDK's) are its own.
    let notifier_only = |name: &str| {
        name.starts_with("AWS_")
            || [
                "TURNSTILE_NOTIFIER",
                "TURNSTILE_SES_FROM",
                "TURNSTILE_RECIPIENT_DOMAIN",
            ]
            .contains(&name)
    };
    for name in compose_env.keys().filter(|n| !notifier_only(n)) {
        assert!(
            used.contains(name),
            "docker-compose.yml sets {name} but scripts/stack.sh does not"
        );
    }
}
