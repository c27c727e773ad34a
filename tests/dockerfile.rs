//! The Dockerfile's image: it runs `woodpecker serve` by default, exposes
//! the port the server listens on, and its healthcheck asks `/healthz`
//! there. No container runtime runs here, so the test reads the
//! Dockerfile and runs what it says (entrypoint, command, environment,
//! healthcheck) against the built binary, listening on 127.0.0.1 (on a
//! free port, which the healthcheck's URL follows) with etcd from
//! `scripts/servers.sh`.

mod served;

use std::collections::HashMap;
use std::process::{Command, Stdio};

struct Image {
    entrypoint: Vec<String>,
    cmd: Vec<String>,
    env: HashMap<String, String>,
    expose: u16,
    healthcheck: String,
}

/// The final stage's instructions (continuation lines joined).
fn image() -> Image {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Dockerfile")).unwrap();
    let joined = text.replace("\\\n", " ");
    let last_stage = joined
        .rsplit_once("\nFROM ")
        .map(|(_, stage)| stage)
        .expect("a multi-stage build");
    let mut image = Image {
        entrypoint: Vec::new(),
        cmd: Vec::new(),
        env: HashMap::new(),
        expose: 0,
        healthcheck: String::new(),
    };
    let exec_form = |rest: &str| -> Vec<String> {
        serde_json::from_str(rest.trim()).unwrap_or_else(|e| panic!("{rest}: {e}"))
    };
    for line in last_stage.lines() {
        let (instruction, rest) = line.trim().split_once(' ').unwrap_or((line, ""));
        match instruction {
            "ENTRYPOINT" => image.entrypoint = exec_form(rest),
            "CMD" => image.cmd = exec_form(rest),
            "ENV" => {
                let (name, value) = rest.trim().split_once('=').expect("ENV NAME=value");
                image.env.insert(name.to_string(), value.to_string());
            }
            "EXPOSE" => image.expose = rest.trim().parse().expect("EXPOSE port"),
            "HEALTHCHECK" => {
                image.healthcheck = rest
                    .split_once(" CMD ")
                    .expect("HEALTHCHECK ... CMD command")
                    .1
                    .trim()
                    .to_string()
            }
            _ => {}
        }
    }
    image
}

#[test]
fn the_image_serves_on_its_exposed_port_and_its_healthcheck_passes() {
    let image = image();
    assert_eq!(image.entrypoint, ["woodpecker"]);
    assert_eq!(image.cmd.first().map(String::as_str), Some("serve"));
    let listen = &image.env["WOODPECKER_LISTEN"];
    assert_eq!(
        listen.rsplit_once(':').unwrap().1.parse::<u16>().unwrap(),
        image.expose,
        "the server listens on the exposed port"
    );
    let health_url = format!("http://127.0.0.1:{}/healthz", image.expose);
    assert!(
        image.healthcheck.contains(&health_url),
        "{}",
        image.healthcheck
    );

    let etcd = std::env::var("WOODPECKER_ETCD_ENDPOINTS")
        .expect("WOODPECKER_ETCD_ENDPOINTS is not set: start the servers with scripts/servers.sh");
    let data = std::env::temp_dir().join(format!("dockerfile-{}", std::process::id()));
    let mut env = image.env.clone();
    env.insert("WOODPECKER_LISTEN".into(), "127.0.0.1:0".into());
    env.insert("WOODPECKER_LOCAL_DIR".into(), data.display().to_string());
    env.insert("WOODPECKER_ETCD_ENDPOINTS".into(), etcd);
    let mut child = Command::new(env!("CARGO_BIN_EXE_woodpecker"))
        .args(&image.cmd)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap())
        .envs(&env)
        .stdout(Stdio::piped())
        .spawn()
        .expect("starting the image's command");
    let addr = served::listening_addr(&mut child);
    let check = image
        .healthcheck
        .replace(&health_url, &format!("http://{addr}/healthz"));
    let status = Command::new("sh").args(["-c", &check]).status().unwrap();
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let exit = child.wait().unwrap();
    let _ = std::fs::remove_dir_all(&data);
    assert!(status.success(), "the healthcheck failed: {check}");
    assert!(exit.success(), "serve exits 0 on SIGTERM");
}
