//! Bearer tokens and TLS on a real `woodpecker serve` process (real etcd
//! and MinIO): requests without or with a wrong token are refused, a
//! read-only token only reads, no token or S3 secret reaches the log or an
//! answer, and HTTPS with the test CA that `scripts/servers.sh` made.

mod served;

use served::*;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const FULL: &str = "full-token-5f2a9c";
const READ: &str = "read-token-7d41e0";

fn with_token(request: ureq::Request, token: &str) -> ureq::Request {
    request.set("authorization", &format!("Bearer {token}"))
}

#[test]
fn tokens_guard_the_api_and_never_show() {
    let log_path = std::env::temp_dir().join(format!("serve-auth-{}.log", std::process::id()));
    let log_file = std::fs::File::create(&log_path).unwrap();
    let served = Served::start_with(
        &[],
        &[
            ("WOODPECKER_SERVE_TOKENS", FULL),
            ("WOODPECKER_SERVE_READ_ONLY_TOKENS", READ),
            ("RUST_LOG", "debug"),
        ],
        Stdio::from(log_file),
        "http",
    );
    let agent = agent();
    let name = unique("auth");
    let create_body = format!(r#"{{"name":"{name}"}}"#);
    let logs = served.url("/v1/logs");
    let mut answers = Vec::new();

    // No token, a wrong one, another scheme: 401 with a challenge.
    for request in [
        agent.post(&logs),
        with_token(agent.post(&logs), "full-token-5f2a9"),
        with_token(agent.post(&logs), &format!("{FULL}x")),
        agent
            .post(&logs)
            .set("authorization", &format!("Basic {FULL}")),
    ] {
        let result = request
            .set("content-type", "application/json")
            .send_bytes(create_body.as_bytes());
        let Err(ureq::Error::Status(401, response)) = result else {
            panic!("expected 401, got {result:?}");
        };
        assert_eq!(response.header("www-authenticate"), Some("Bearer"));
        let body = response.into_string().unwrap();
        assert_eq!(json(body.as_bytes())["code"], "unauthorized");
        answers.push(body);
    }
    // The probes need no token.
    for probe in ["/healthz", "/readyz"] {
        assert_eq!(call(agent.get(&served.url(probe)), None).0, 200, "{probe}");
    }
    // A read-only token reads but cannot write.
    let (status, body) = call(
        with_token(agent.post(&logs), READ),
        Some(("application/json", create_body.as_bytes())),
    );
    assert_eq!(
        (status, json(&body)["code"].as_str()),
        (403, Some("forbidden"))
    );
    answers.push(String::from_utf8_lossy(&body).into_owned());
    // The full token writes; the read-only one then reads it.
    let (status, body) = call(
        with_token(agent.post(&logs), FULL),
        Some(("application/json", create_body.as_bytes())),
    );
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
    let entries = served.url(&format!("/v1/logs/{name}/entries"));
    let (status, body) = call(
        with_token(agent.post(&entries), FULL),
        Some((
            "application/json",
            br#"{"entries":[{"payload":"guarded"}]}"#.as_slice(),
        )),
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let (status, body) = call(
        with_token(agent.get(&format!("{entries}?format=json")), READ),
        None,
    );
    assert_eq!(status, 200);
    assert_eq!(json(&body)["entries"][0]["payload"], "guarded");
    let (status, body) = call(with_token(agent.get(&served.url("/metrics")), READ), None);
    assert_eq!(status, 200);
    answers.push(String::from_utf8_lossy(&body).into_owned());

    let status = served.terminate(std::time::Duration::from_secs(60));
    assert!(status.success());
    let log = std::fs::read_to_string(&log_path).unwrap();
    let _ = std::fs::remove_file(&log_path);
    assert!(log.contains("DEBUG"), "the log ran at debug level");
    let s3_secret = std::env::var("WOODPECKER_S3_SECRET_KEY").unwrap();
    for secret in [FULL, READ, "full-token-5f2a9", s3_secret.as_str()] {
        assert!(!log.contains(secret), "the log shows a secret");
        for answer in &answers {
            assert!(
                !answer.contains(secret),
                "an answer shows a secret: {answer}"
            );
        }
    }
}

/// `curl` over HTTPS trusting only `ca`: status and body.
fn curl(ca: &str, args: &[&str]) -> (u16, String) {
    let output = Command::new("curl")
        .args(["-sS", "--cacert", ca, "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .expect("running curl");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", &text));
    (status.trim().parse().unwrap_or(0), body.to_string())
}

#[test]
fn https_with_the_test_ca() {
    let ca = std::env::var("WOODPECKER_TEST_S3_TLS_CA_CERT").expect(
        "WOODPECKER_TEST_S3_TLS_CA_CERT is not set: start the servers with scripts/servers.sh",
    );
    let certs = std::path::Path::new(&ca).parent().unwrap();
    let cert = certs.join("public.crt");
    let key = certs.join("private.key");
    let served = Served::start_with(
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
            "--header-timeout",
            "1s",
        ],
        &[],
        Stdio::inherit(),
        "https",
    );
    let name = unique("tls");
    let post_json = |url: &str, body: &str| {
        curl(
            &ca,
            &[
                "-XPOST",
                "-H",
                "content-type: application/json",
                "-d",
                body,
                url,
            ],
        )
    };
    let (status, body) = post_json(&served.url("/v1/logs"), &format!(r#"{{"name":"{name}"}}"#));
    assert_eq!(status, 201, "{body}");
    let entries = served.url(&format!("/v1/logs/{name}/entries"));
    let (status, body) = post_json(&entries, r#"{"entries":[{"payload":"over tls"}]}"#);
    assert_eq!(status, 200, "{body}");
    let (status, body) = curl(&ca, &[&format!("{entries}?format=json")]);
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(body.as_bytes())["entries"][0]["payload"], "over tls");

    // Plain HTTP to the TLS port gets no answer; an untrusted CA fails the
    // handshake; the server serves on.
    let plain = served.base.replace("https://", "http://");
    let result = agent().get(&format!("{plain}/healthz")).call();
    assert!(result.is_err(), "plain HTTP must not be answered");
    let (status, _) = curl("/etc/hostname", &[&served.url("/healthz")]);
    assert_eq!(
        status, 0,
        "a CA file that is no CA must not verify the server"
    );
    assert_eq!(curl(&ca, &[&served.url("/healthz")]).0, 200);

    // A connection that never starts its handshake is closed at the
    // header timeout.
    let addr = served.base.trim_start_matches("https://");
    let mut silent = std::net::TcpStream::connect(addr).unwrap();
    silent
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let started = Instant::now();
    let sent = read_until_closed(&mut silent);
    assert!(sent.is_empty(), "the server sent {sent:?} before closing");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(10),
        "closed after {took:?}, the timeout being 1 s"
    );
}
